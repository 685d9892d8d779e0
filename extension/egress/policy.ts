// The egress policy of one task: which destinations the guest may reach through the host proxy.
// Every name is first checked by checkHost (hostname.ts): one spelling per name, or refused.
// Order: denied list → model API hosts (never) → allowed list (domains, wildcards, IP literals) →
// the ask callback → deny. An allowed entry without a port allows ports 80 and 443 only; "host:port"
// allows exactly that port (denied and model entries without a port cover every port). After a
// name is allowed, every address it resolves to is checked against the special ranges
// (addresses.ts) and the host's own addresses, unless that exact IP is listed; metadata and cloud
// host endpoints never pass. The proxy connects to the checked address, so DNS cannot change it.
import * as os from 'node:os';
import { canonicalIp, classifyAddress } from './addresses';
import { checkHost } from './hostname';

export interface HostRule {
  readonly raw: string;
  /** canonical host, without the "*." of a wildcard */
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

/** The ports an allowed entry without an explicit port covers. */
export const WEB_PORTS: ReadonlySet<number> = new Set([80, 443]);

export function parseRule(raw: string): HostRule {
  let s = raw.trim().toLowerCase();
  let port: number | undefined;
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    const h = checkHost(v6[1]!);
    if (!h.ok || h.ip !== 6) throw new Error(`"${raw}" is not a host name, wildcard (*.example.com) or IP address`);
    return { raw, host: h.host, wildcard: false, ip: true, port: v6[2] ? checkPort(Number(v6[2]), raw) : undefined };
  }
  const colon = s.lastIndexOf(':');
  if (colon > 0 && /^\d+$/.test(s.slice(colon + 1)) && s.indexOf(':') === colon) {
    port = checkPort(Number(s.slice(colon + 1)), raw);
    s = s.slice(0, colon);
  }
  const wildcard = s.startsWith('*.');
  const h = checkHost(wildcard ? s.slice(2) : s);
  if (!h.ok || (wildcard && h.ip !== 0)) throw new Error(`"${raw}" is not a host name, wildcard (*.example.com) or IP address${h.ok ? '' : `: ${h.reason}`}`);
  return { raw, host: h.host, wildcard, port, ip: h.ip !== 0 };
}

function checkPort(p: number, raw: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`"${raw}" has an invalid port`);
  return p;
}

/**
 * Whether a rule covers an already canonical host (see checkHost). `portless` says what an entry
 * without a port covers: every port (denied and model lists) or 80/443 (allowed lists).
 */
export function ruleMatches(rule: HostRule, host: string, port: number, portless: 'any' | 'web' = 'web'): boolean {
  if (rule.port !== undefined ? rule.port !== port : portless === 'web' && !WEB_PORTS.has(port)) return false;
  if (rule.wildcard) return host.endsWith(`.${rule.host}`);
  return host === rule.host;
}

/** The canonical form of a valid host, or the input lower-cased (never matches a rule then). */
export function normalizeHost(host: string): string {
  const h = checkHost(host.trim());
  return h.ok ? h.host : host.toLowerCase();
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
  decide(rawHost: string, port: number): Verdict | undefined {
    const checked = checkHost(rawHost);
    if (!checked.ok) return { allowed: false, rule: 'bad-host', reason: `not a valid host name: ${checked.reason}` };
    const h = checked.host;
    for (const r of this.denied) if (ruleMatches(r, h, port, 'any')) return { allowed: false, rule: `denied:${r.raw}`, reason: `${h} is on the denied list` };
    for (const r of this.model) if (ruleMatches(r, h, port, 'any')) return { allowed: false, rule: `model-api:${r.raw}`, reason: 'the model API is never reachable from the guest' };
    if (checked.ip !== 0 && !this.listedIp(h, port)) return { allowed: false, rule: 'ip-literal', reason: `IP address ${h} is not on the allowed list` };
    for (const r of [...this.allowed, ...this.granted]) if (ruleMatches(r, h, port)) return { allowed: true, rule: `allowed:${r.raw}` };
    return undefined;
  }

  /** True when this exact IP is listed as allowed (on this port, or on 80/443 for an entry without a port). */
  listedIp(ip: string, port: number): boolean {
    const h = canonicalIp(ip);
    return [...this.allowed, ...this.granted].some((r) => r.ip && r.host === h && (r.port !== undefined ? r.port === port : WEB_PORTS.has(port)));
  }
}

export function hostOwnAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(canonicalIp(a.address));
  return out;
}

/** Why an address may not be reached, or undefined when it may. */
export function addressProblem(rawIp: string, port: number, policy: EgressPolicy, own: ReadonlySet<string> = hostOwnAddresses()): string | undefined {
  const c = classifyAddress(rawIp);
  if (c.range?.never) return c.reason;
  if (policy.listedIp(c.effective, port)) return undefined;
  const mine = [...own].some((a) => canonicalIp(a) === c.effective);
  if (!mine) return c.reason;
  return c.reason ? `${c.reason}, and an address of this host` : `${c.effective} is an address of this host`;
}
