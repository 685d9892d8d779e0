// The special-purpose address ranges the proxy never connects to, as one table with a reason per
// range (IANA's IPv4/IPv6 special-purpose registries plus cloud host endpoints). Addresses are
// compared as bytes, so every spelling of an address ("::ffff:127.0.0.1", "::ffff:7f00:1",
// "0:0:0:0:0:ffff:7f00:1") is judged the same, and IPv6 forms that carry an IPv4 address are
// either judged as that IPv4 address (IPv4-mapped, the well-known NAT64 prefix: how a v4 server
// legitimately appears over v6) or refused outright with the embedded address named (IPv4-
// compatible, SIIT, local-use NAT64, 6to4, Teredo: deprecated or network-specific transitions
// that no allowed service needs, and whose embedded address the host cannot judge reliably).
import { isIP } from 'node:net';

export interface SpecialRange {
  readonly cidr: string;
  readonly reason: string;
  /** Refused even when the exact address is on the allowed list (metadata and host endpoints). */
  readonly never?: true;
  /** Byte offset of an IPv4 address carried inside this IPv6 range. */
  readonly v4At?: number;
  /** Judge the address as the IPv4 address it carries instead of refusing the range. */
  readonly judgeEmbedded?: true;
}

/** First match wins, so the narrow entries come before the ranges that contain them. */
export const SPECIAL_RANGES: readonly SpecialRange[] = [
  { cidr: '169.254.169.254/32', reason: 'a cloud metadata address (AWS, GCP, Azure, OpenStack)', never: true },
  { cidr: '169.254.170.2/32', reason: 'a cloud metadata address (AWS ECS task credentials)', never: true },
  { cidr: '100.100.100.200/32', reason: 'a cloud metadata address (Alibaba Cloud)', never: true },
  { cidr: '168.63.129.16/32', reason: 'a cloud host endpoint (Azure WireServer)', never: true },
  { cidr: 'fd00:ec2::254/128', reason: 'a cloud metadata address (AWS, IPv6)', never: true },
  // IPv4
  { cidr: '0.0.0.0/8', reason: 'an unspecified ("this network") address' },
  { cidr: '10.0.0.0/8', reason: 'a private address (RFC 1918)' },
  { cidr: '100.64.0.0/10', reason: 'a private address (carrier-grade NAT, RFC 6598)' },
  { cidr: '127.0.0.0/8', reason: 'a loopback address' },
  { cidr: '169.254.0.0/16', reason: 'a link-local address' },
  { cidr: '172.16.0.0/12', reason: 'a private address (RFC 1918)' },
  { cidr: '192.0.0.0/24', reason: 'a reserved address (IETF protocol assignments)' },
  { cidr: '192.0.2.0/24', reason: 'a documentation address (TEST-NET-1)' },
  { cidr: '192.88.99.0/24', reason: 'a reserved address (former 6to4 relay anycast)' },
  { cidr: '192.168.0.0/16', reason: 'a private address (RFC 1918)' },
  { cidr: '198.18.0.0/15', reason: 'a benchmarking address (RFC 2544)' },
  { cidr: '198.51.100.0/24', reason: 'a documentation address (TEST-NET-2)' },
  { cidr: '203.0.113.0/24', reason: 'a documentation address (TEST-NET-3)' },
  { cidr: '224.0.0.0/4', reason: 'a multicast address' },
  { cidr: '255.255.255.255/32', reason: 'the broadcast address' },
  { cidr: '240.0.0.0/4', reason: 'a reserved address (240.0.0.0/4)' },
  // IPv6
  { cidr: '::/128', reason: 'an unspecified address' },
  { cidr: '::1/128', reason: 'a loopback address' },
  { cidr: '::ffff:0:0/96', reason: 'an IPv4-mapped address', v4At: 12, judgeEmbedded: true },
  { cidr: '::ffff:0:0:0/96', reason: 'an IPv4-translated (SIIT) address', v4At: 12 },
  { cidr: '::/96', reason: 'an IPv4-compatible address (deprecated)', v4At: 12 },
  { cidr: '64:ff9b::/96', reason: 'a NAT64 address', v4At: 12, judgeEmbedded: true },
  { cidr: '64:ff9b:1::/48', reason: 'a local-use NAT64 address (RFC 8215)' },
  { cidr: '100::/64', reason: 'a discard-only address (RFC 6666)' },
  { cidr: '2001:2::/48', reason: 'a benchmarking address (RFC 5180)' },
  { cidr: '2001:10::/28', reason: 'a reserved address (ORCHID)' },
  { cidr: '2001:20::/28', reason: 'a reserved address (ORCHIDv2)' },
  { cidr: '2001:db8::/32', reason: 'a documentation address' },
  { cidr: '2001::/32', reason: 'a Teredo address', v4At: 4 },
  { cidr: '2002::/16', reason: 'a 6to4 address', v4At: 2 },
  { cidr: '3fff::/20', reason: 'a documentation address (RFC 9637)' },
  { cidr: 'fc00::/7', reason: 'a private address (unique local, fc00::/7)' },
  { cidr: 'fe80::/10', reason: 'a link-local address' },
  { cidr: 'fec0::/10', reason: 'a site-local address (deprecated)' },
  { cidr: 'ff00::/8', reason: 'a multicast address' },
];

/** The 4 or 16 bytes of an IP address (a zone id such as "%eth0" is ignored), or undefined. */
export function ipBytes(ip: string): Buffer | undefined {
  const s = ip.split('%')[0]!;
  const v = isIP(s);
  if (v === 4) return Buffer.from(s.split('.').map(Number));
  if (v !== 6) return undefined;
  let text = s.toLowerCase();
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number);
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    text = text.slice(0, -dotted[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [left, right] = text.includes('::') ? text.split('::') : [text, undefined];
  const words = (part: string | undefined): number[] => (part ? part.split(':').filter((w) => w !== '').map((w) => parseInt(w, 16)) : []);
  const head = words(left);
  const rest = [...words(right), ...tail];
  const zeros = right === undefined ? 0 : 8 - head.length - rest.length;
  const all = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  if (all.length !== 8) return undefined;
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

function formatBytes(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i));
  // RFC 5952: compress the longest run (≥ 2) of zero words, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** One text form per address (RFC 5952 for IPv6), so listed and resolved addresses compare equal. */
export function canonicalIp(ip: string): string {
  const b = ipBytes(ip);
  return b ? formatBytes(b) : ip.toLowerCase();
}

interface Compiled extends SpecialRange {
  readonly net: Buffer;
  readonly bits: number;
}
const COMPILED: Compiled[] = SPECIAL_RANGES.map((r) => {
  const [addr, bits] = r.cidr.split('/');
  const net = ipBytes(addr!);
  if (!net) throw new Error(`bad range ${r.cidr}`);
  return { ...r, net, bits: Number(bits) };
});

function inRange(b: Buffer, r: Compiled): boolean {
  if (b.length !== r.net.length) return false;
  const full = r.bits >> 3;
  for (let i = 0; i < full; i++) if (b[i] !== r.net[i]) return false;
  const rem = r.bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (b[full]! & mask) === (r.net[full]! & mask);
}

export interface Classified {
  /** The address the checks apply to: the embedded IPv4 address of a mapped / NAT64 address, else the address itself (canonical). */
  readonly effective: string;
  readonly range?: SpecialRange;
  /** e.g. "::ffff:127.0.0.1 is an IPv4-mapped address of 127.0.0.1, a loopback address" */
  readonly reason?: string;
}

/** Which special range an address falls in, if any, following embedded IPv4 addresses. */
export function classifyAddress(ip: string): Classified {
  const b = ipBytes(ip);
  if (!b) return { effective: ip, reason: `${ip} is not an IP address`, range: { cidr: '', reason: 'not an IP address', never: true } };
  const text = formatBytes(b);
  const r = COMPILED.find((x) => inRange(b, x));
  if (!r) return { effective: text };
  if (r.v4At === undefined) return { effective: text, range: r, reason: `${text} is ${r.reason}` };
  const v4 = formatBytes(b.subarray(r.v4At, r.v4At + 4));
  if (r.judgeEmbedded) {
    const inner = classifyAddress(v4);
    return inner.range ? { effective: v4, range: inner.range, reason: `${text} is ${r.reason} of ${v4}, ${inner.range.reason}` } : { effective: v4 };
  }
  return { effective: text, range: r, reason: `${text} is ${r.reason} (it carries ${v4})` };
}
