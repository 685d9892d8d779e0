// The one gate every host name passes before any policy rule sees it: the HTTP proxy's request
// target and Host header, a CONNECT target, a SOCKS5 domain, a TLS SNI, an allow/deny rule.
// A name is accepted only in one canonical spelling (lower case, no trailing dot, ASCII letters,
// digits, "-" and "_" in labels of 1–63, 253 in all, IDN only as punycode, IPv6 in its canonical
// text form), so a string can never match an allowed wildcard by one reading and resolve as
// something else by another ("evil.com\0.npmjs.org", "x.npmjs.org.evil.com", "%2e", "0x7f.1").
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { canonicalIp } from './addresses';

export const MAX_HOST_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export type HostCheck = { readonly ok: true; readonly host: string; readonly ip: 0 | 4 | 6 } | { readonly ok: false; readonly reason: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
/** A last label that is all digits (or hex) makes WHATWG URL parsers and getaddrinfo read the name as an IPv4 number. */
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/;

const bad = (reason: string): HostCheck => ({ ok: false, reason });

export function checkHost(raw: string): HostCheck {
  if (raw.length === 0) return bad('the host name is empty');
  if (raw.length > MAX_HOST_LENGTH + 3) return bad(`the host name is longer than ${MAX_HOST_LENGTH} characters`);
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return bad('the host name contains a control character');
    if (c === 0x20) return bad('the host name contains a space');
    if (c > 0x7e) return bad('the host name contains a non-ASCII character (write international names in punycode, xn--…)');
  }
  let h = raw.toLowerCase();
  if (h.startsWith('[') || h.endsWith(']')) {
    const inner = h.slice(1, -1);
    if (!h.startsWith('[') || !h.endsWith(']') || isIP(inner) !== 6 || inner.includes('%')) return bad('the bracketed host is not an IPv6 address');
    return { ok: true, host: canonicalIp(inner), ip: 6 };
  }
  if (h.includes(':')) {
    if (isIP(h) !== 6 || h.includes('%')) return bad('the host is not a name or an IP address');
    return { ok: true, host: canonicalIp(h), ip: 6 };
  }
  if (isIP(h) === 4) return { ok: true, host: h, ip: 4 };
  // "example.com." is the absolute spelling of "example.com": one trailing dot is dropped, everywhere.
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0) return bad('the host name is empty');
  if (h.length > MAX_HOST_LENGTH) return bad(`the host name is longer than ${MAX_HOST_LENGTH} characters`);
  const labels = h.split('.');
  for (const label of labels) {
    if (label.length === 0) return bad('the host name has an empty label');
    if (label.length > MAX_LABEL_LENGTH) return bad(`a label of the host name is longer than ${MAX_LABEL_LENGTH} characters`);
    if (!LABEL.test(label)) return bad(`the label "${label}" is not letters, digits, "_" and inner "-"`);
    if (label.startsWith('xn--') && domainToASCII(label) !== label) return bad(`the label "${label}" is not valid punycode`);
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) return bad('the host name reads as a numeric IPv4 address but is not a plain dotted quad');
  return { ok: true, host: h, ip: 0 };
}

/** "host:port", "[v6]:port" or (without a port) "host" → its parts, the host checked. */
export function splitHostPort(s: string, defaultPort?: number): { ok: true; host: string; ip: 0 | 4 | 6; port: number } | { ok: false; reason: string } {
  let hostPart = s;
  let portPart: string | undefined;
  const close = s.lastIndexOf(']');
  const colon = s.lastIndexOf(':');
  if (s.startsWith('[')) {
    if (close < 0) return { ok: false, reason: 'unbalanced "["' };
    hostPart = s.slice(0, close + 1);
    const after = s.slice(close + 1);
    if (after) {
      if (!after.startsWith(':')) return { ok: false, reason: 'junk after the IPv6 address' };
      portPart = after.slice(1);
    }
  } else if (colon >= 0) {
    if (s.indexOf(':') !== colon) return { ok: false, reason: 'an IPv6 address must be written in brackets with a port' };
    hostPart = s.slice(0, colon);
    portPart = s.slice(colon + 1);
  }
  let port: number;
  if (portPart === undefined) {
    if (defaultPort === undefined) return { ok: false, reason: 'a port is needed (host:port)' };
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portPart)) return { ok: false, reason: 'the port is not a number' };
    port = Number(portPart);
    if (port < 1 || port > 65535) return { ok: false, reason: 'the port is out of range' };
  }
  const h = checkHost(hostPart);
  if (!h.ok) return h;
  return { ok: true, host: h.host, ip: h.ip, port };
}

/** A host name as it may be shown and logged: at most 255 characters, anything unprintable escaped. */
export function displayHost(raw: string): string {
  const cut = raw.length > 255 ? `${raw.slice(0, 255)}…` : raw;
  return cut.replace(/[^\x21-\x7e…]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
