// What a client says first inside an allowed tunnel, read completely before one byte goes on: a
// TLS ClientHello (reassembled from as many TLS records and TCP writes as it was split into) or an
// HTTP/1 request head. The proxy checks the SNI / Host it names against the tunnel's host and
// refuses anything else, anything it cannot parse, and anything larger than FIRST_FLIGHT_MAX_BYTES.
import { checkHost, displayHost, splitHostPort } from './hostname';

/** A real ClientHello is 0.5–2 KB (post-quantum key shares included); a request head rarely passes 16 KB. */
export const FIRST_FLIGHT_MAX_BYTES = 64 * 1024;
const MAX_TLS_RECORD = 16384 + 256;

export type FirstFlight =
  | { readonly kind: 'more' }
  | { readonly kind: 'tls'; readonly sni?: string }
  | { readonly kind: 'http'; readonly method: string; readonly target: string; readonly host: string }
  | { readonly kind: 'refuse'; readonly reason: string };

const more: FirstFlight = { kind: 'more' };
const refuse = (reason: string): FirstFlight => ({ kind: 'refuse', reason });

/** Judges the bytes received so far: 'more' until a complete ClientHello or request head is there. */
export function inspectFirstFlight(buf: Buffer): FirstFlight {
  if (buf.length === 0) return more;
  if (buf[0] === 0x16) return readClientHello(buf);
  if (buf[0]! >= 0x41 && buf[0]! <= 0x5a) return readHttpHead(buf);
  return refuse(`the tunnel starts with neither a TLS ClientHello nor an HTTP/1 request (first byte 0x${buf[0]!.toString(16).padStart(2, '0')})`);
}

function readClientHello(buf: Buffer): FirstFlight {
  const fragments: Buffer[] = [];
  let have = 0;
  let need = -1;
  for (let p = 0; ; ) {
    if (buf.length - p < 5) return buf.length > FIRST_FLIGHT_MAX_BYTES ? refuse('the ClientHello is too large') : more;
    if (buf[p] !== 0x16) return refuse('a TLS record other than a handshake came before the ClientHello was complete');
    if (buf[p + 1] !== 0x03 || buf[p + 2]! > 0x04) return refuse('the TLS record has an unknown version');
    const len = buf.readUInt16BE(p + 3);
    if (len === 0 || len > MAX_TLS_RECORD) return refuse('the TLS record has an invalid length');
    if (buf.length - p - 5 < len) return p + 5 + len > FIRST_FLIGHT_MAX_BYTES ? refuse('the ClientHello is too large') : more;
    fragments.push(buf.subarray(p + 5, p + 5 + len));
    have += len;
    p += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = Buffer.concat(fragments);
      if (hs[0] !== 0x01) return refuse('the first TLS handshake message is not a ClientHello');
      need = 4 + hs.readUIntBE(1, 3);
      if (need > FIRST_FLIGHT_MAX_BYTES) return refuse('the ClientHello is too large');
    }
    if (need >= 0 && have >= need) {
      // The records that carry the ClientHello carry nothing else (the client has to wait for the ServerHello).
      if (have > need) return refuse('unexpected handshake data after the ClientHello');
      return parseClientHello(Buffer.concat(fragments).subarray(4, need));
    }
  }
}

class Reader {
  p = 0;
  constructor(readonly b: Buffer) {}
  u8(): number {
    if (this.p + 1 > this.b.length) throw new RangeError('truncated');
    return this.b[this.p++]!;
  }
  u16(): number {
    if (this.p + 2 > this.b.length) throw new RangeError('truncated');
    const v = this.b.readUInt16BE(this.p);
    this.p += 2;
    return v;
  }
  bytes(n: number): Buffer {
    if (this.p + n > this.b.length) throw new RangeError('truncated');
    const v = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }
  get left(): number {
    return this.b.length - this.p;
  }
}

const EXT_SERVER_NAME = 0x0000;
/** Encrypted ClientHello (and its draft predecessor ESNI): the real server name is encrypted, so it cannot be checked. */
const EXT_ECH = new Set([0xfe0d, 0xffce]);

/** The ClientHello body (RFC 8446 §4.1.2), strictly: every length must add up, extensions appear once. */
function parseClientHello(body: Buffer): FirstFlight {
  try {
    const r = new Reader(body);
    if (r.u8() !== 0x03) return refuse('the ClientHello has an unknown version');
    r.u8();
    r.bytes(32); // random
    const sid = r.u8();
    if (sid > 32) return refuse('the ClientHello session id is too long');
    r.bytes(sid);
    const suites = r.u16();
    if (suites < 2 || suites % 2 !== 0) return refuse('the ClientHello cipher suite list is malformed');
    r.bytes(suites);
    const compression = r.u8();
    if (compression < 1) return refuse('the ClientHello compression list is empty');
    r.bytes(compression);
    if (r.left === 0) return { kind: 'tls' }; // no extensions at all, so no SNI
    const extLen = r.u16();
    if (extLen !== r.left) return refuse('the ClientHello extensions do not fill the message');
    const seen = new Set<number>();
    let sni: string | undefined;
    while (r.left > 0) {
      const type = r.u16();
      const data = new Reader(r.bytes(r.u16()));
      if (seen.has(type)) return refuse(`the ClientHello repeats extension ${type}`);
      seen.add(type);
      if (EXT_ECH.has(type)) return refuse('the ClientHello uses Encrypted ClientHello, which hides the server name');
      if (type !== EXT_SERVER_NAME) continue;
      if (data.u16() !== data.left) return refuse('the SNI extension is malformed');
      while (data.left > 0) {
        const nameType = data.u8();
        const name = data.bytes(data.u16());
        if (nameType !== 0) return refuse('the SNI extension holds a name that is not a host name');
        if (sni !== undefined) return refuse('the SNI extension names more than one host');
        const checked = checkHost(name.toString('latin1'));
        if (!checked.ok) return refuse(`the SNI is not a valid host name: ${checked.reason}`);
        if (checked.ip !== 0) return refuse('the SNI is an IP address, which TLS does not allow');
        sni = checked.host;
      }
      if (sni === undefined) return refuse('the SNI extension is empty');
    }
    return { kind: 'tls', sni };
  } catch {
    return refuse('the ClientHello is truncated or malformed');
  }
}

/** A control character other than tab (header values may hold tabs, nothing else below 0x20, nor DEL). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/(\d\.\d)$/;

function readHttpHead(buf: Buffer): FirstFlight {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) {
    if (buf.length > FIRST_FLIGHT_MAX_BYTES) return refuse('the HTTP request head is too large');
    const firstLine = buf.indexOf('\r\n');
    const line = buf.subarray(0, firstLine < 0 ? Math.min(buf.length, 64) : firstLine).toString('latin1');
    const method = line.split(' ')[0]!;
    if (!TOKEN.test(method) || (firstLine >= 0 && !REQUEST_LINE.test(line))) return refuse(`the tunnel starts with neither a TLS ClientHello nor an HTTP/1 request (${JSON.stringify(line.slice(0, 24))})`);
    return more;
  }
  if (end + 4 > FIRST_FLIGHT_MAX_BYTES) return refuse('the HTTP request head is too large');
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) return refuse('the HTTP request line is malformed');
  const [, method, target, version] = m as unknown as [string, string, string, string];
  // HTTP/2 with prior knowledge (RFC 9113 §3.3): refused, not parsed. Checking the first HEADERS
  // frame's :authority would need an HPACK decoder (dynamic table, Huffman), and every later
  // stream on the connection may name another authority, so the proxy would have to terminate
  // HTTP/2 completely to check it; clients fall back to HTTP/1.1 or use TLS (ALPN h2), whose SNI is checked.
  if (method === 'PRI' && target === '*' && version === '2.0') return refuse('HTTP/2 with prior knowledge is not accepted (use HTTP/1.1 or TLS)');
  if (version !== '1.1' && version !== '1.0') return refuse(`HTTP/${version} is not accepted`);
  const hosts: string[] = [];
  for (const line of lines.slice(1)) {
    const h = /^([^:]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!h || !TOKEN.test(h[1]!) || hasControl(h[2]!)) return refuse('the HTTP request has a malformed header line');
    if (h[1]!.toLowerCase() === 'host') hosts.push(h[2]!);
  }
  if (hosts.length !== 1) return refuse(hosts.length === 0 ? 'the HTTP request has no Host header' : 'the HTTP request has more than one Host header');
  return { kind: 'http', method, target, host: hosts[0]! };
}

/** The SNI of a complete ClientHello (possibly split over records), if it has a valid one. */
export function parseSni(buf: Buffer): string | undefined {
  const r = inspectFirstFlight(buf);
  return r.kind === 'tls' ? r.sni : undefined;
}

/** Whether a Host header (or an authority) names exactly this host and port. */
export function authorityMatches(authority: string, host: string, port: number, defaultPort: number): { ok: true } | { ok: false; reason: string } {
  const a = splitHostPort(authority, defaultPort);
  if (!a.ok) return { ok: false, reason: `"${displayHost(authority)}" is not a valid host: ${a.reason}` };
  if (a.host !== host || a.port !== port) return { ok: false, reason: `"${a.host}:${a.port}" is not ${host}:${port}` };
  return { ok: true };
}
