// The egress policy of one task: which destinations the guest may reach through the host proxy.
// Order: denied list → model API hosts (never) → allowed list (domains, wildcards, IP literals) →
// the ask callback → deny. After a name is allowed, every address it resolves to is checked again
// (no loopback, link-local, metadata, private, multicast or host-own address unless that exact IP
// is listed), and the proxy connects to the checked address, so DNS cannot change the answer.
import { BlockList, isIP } from 'node:net';
import * as os from 'node:os';

export interface HostRule {
  readonly raw: string;
  /** lower-case host, without the "*." of a wildcard */
  readonly host: string;
  readonly wildcard: boolean;
  readonly port?: number;
  readonly ip: boolean;
}

export type Verdict =
  | { readonly allowed: true; readonly rule: string }
  | { readonly allowed: false; readonly rule: string; readonly reason: string };

/** The model API must never be reachable from the guest, whatever the lists say. */
export const MODEL_API_HOSTS = ['anthropic.com', '*.anthropic.com', 'claude.ai', '*.claude.ai', '*.claude.com', 'claude.com'];

export function parseRule(raw: string): HostRule {
  let s = raw.trim().toLowerCase();
  let port: number | undefined;
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    return { raw, host: v6[1]!, wildcard: false, ip: true, port: v6[2] ? checkPort(Number(v6[2]), raw) : undefined };
  }
  const colon = s.lastIndexOf(':');
  if (colon > 0 && /^\d+$/.test(s.slice(colon + 1)) && s.indexOf(':') === colon) {
    port = checkPort(Number(s.slice(colon + 1)), raw);
    s = s.slice(0, colon);
  }
  const wildcard = s.startsWith('*.');
  const host = wildcard ? s.slice(2) : s;
  if (!host || !/^[a-z0-9.-]+$|^[0-9a-f:]+$/.test(host)) throw new Error(`"${raw}" is not a host name, wildcard (*.example.com) or IP address`);
  return { raw, host, wildcard, port, ip: !wildcard && isIP(host) !== 0 };
}

function checkPort(p: number, raw: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`"${raw}" has an invalid port`);
  return p;
}

export function ruleMatches(rule: HostRule, host: string, port: number): boolean {
  if (rule.port !== undefined && rule.port !== port) return false;
  const h = normalizeHost(host);
  if (rule.wildcard) return h.endsWith(`.${rule.host}`);
  return h === rule.host;
}

export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

export interface PolicyInput {
  readonly allowed: readonly string[];
  readonly denied: readonly string[];
  /** Extra model API hosts (e.g. the configured base URL's host). */
  readonly modelHosts?: readonly string[];
}

export class EgressPolicy {
  private readonly allowed: HostRule[];
  private readonly denied: HostRule[];
  private readonly model: HostRule[];
  /** Added at run time ("allow this domain for this task"). */
  private readonly granted: HostRule[] = [];

  constructor(input: PolicyInput) {
    this.allowed = input.allowed.map(parseRule);
    this.denied = input.denied.map(parseRule);
    this.model = [...MODEL_API_HOSTS, ...(input.modelHosts ?? [])].map(parseRule);
  }

  grant(raw: string): void {
    this.granted.push(parseRule(raw));
  }

  get allowedRules(): string[] {
    return [...this.allowed, ...this.granted].map((r) => r.raw);
  }

  /** Name-level decision. `undefined` means no rule matched (the caller may ask). */
  decide(host: string, port: number): Verdict | undefined {
    const h = normalizeHost(host);
    for (const r of this.denied) if (ruleMatches(r, h, port)) return { allowed: false, rule: `denied:${r.raw}`, reason: `${h} is on the denied list` };
    for (const r of this.model) if (ruleMatches(r, h, port)) return { allowed: false, rule: `model-api:${r.raw}`, reason: 'the model API is never reachable from the guest' };
    if (isIP(h) && !this.listedIp(h, port)) return { allowed: false, rule: 'ip-literal', reason: `IP address ${h} is not on the allowed list` };
    for (const r of [...this.allowed, ...this.granted]) if (ruleMatches(r, h, port)) return { allowed: true, rule: `allowed:${r.raw}` };
    return undefined;
  }

  /** True when this exact IP (and port, if the entry has one) is listed as allowed. */
  listedIp(ip: string, port: number): boolean {
    const h = normalizeHost(ip);
    return [...this.allowed, ...this.granted].some((r) => r.ip && r.host === h && (r.port === undefined || r.port === port));
  }
}

const METADATA = new BlockList();
METADATA.addAddress('169.254.169.254');
METADATA.addAddress('100.100.100.200');
METADATA.addAddress('fd00:ec2::254', 'ipv6');

const RANGES: [string, BlockList][] = [];
function range(name: string, entries: [string, number, 'ipv4' | 'ipv6'][]): void {
  const b = new BlockList();
  for (const [net, prefix, type] of entries) b.addSubnet(net, prefix, type);
  RANGES.push([name, b]);
}
range('unspecified', [['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']]);
range('loopback', [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]);
range('link-local', [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']]);
range('private', [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['100.64.0.0', 10, 'ipv4'], ['fc00::', 7, 'ipv6']]);
range('multicast', [['224.0.0.0', 4, 'ipv4'], ['240.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']]);

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as the IPv4 address it carries. */
function unmap(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function hostOwnAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address.toLowerCase());
  return out;
}

/** Why an address may not be reached, or undefined when it may. */
export function addressProblem(rawIp: string, port: number, policy: EgressPolicy, own: ReadonlySet<string> = hostOwnAddresses()): string | undefined {
  const ip = unmap(rawIp.toLowerCase());
  const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  if (METADATA.check(ip, type)) return `${ip} is a cloud metadata address`;
  if (policy.listedIp(ip, port)) return undefined;
  for (const [name, list] of RANGES) if (list.check(ip, type)) return `${ip} is a ${name} address`;
  if (own.has(ip)) return `${ip} is an address of this host`;
  return undefined;
}
