// Resolves a name the policy allowed, checks every address of the answer (one refused address
// refuses the name: an answer that mixes a public and a private address is a rebinding setup, not
// an accident) and opens a TCP connection to a checked address. The proxy connects to that
// address, never to the name, so a DNS answer that changes between check and connect changes nothing.
import { lookup as dnsLookup } from 'node:dns/promises';
import * as net from 'node:net';
import { canonicalIp } from './addresses';
import { checkHost } from './hostname';
import { addressProblem, type EgressPolicy } from './policy';

export type Resolver = (host: string) => Promise<string[]>;

// A name is looked up fully qualified (trailing dot): the resolver's search domains must never turn
// an allowed name that does not exist ("zz.npmjs.org") into another host ("zz.npmjs.org.corp.example").
export const defaultResolver: Resolver = async (host) => (await dnsLookup(net.isIP(host) || host.endsWith('.') ? host : `${host}.`, { all: true, verbatim: true })).map((a) => a.address);

export const CONNECT_TIMEOUT_MS = 10_000;

export class EgressRefused extends Error {
  constructor(
    readonly rule: string,
    message: string,
  ) {
    super(message);
  }
}

export async function resolveChecked(host: string, port: number, policy: EgressPolicy, resolver: Resolver, own?: ReadonlySet<string>): Promise<string> {
  const checked = checkHost(host);
  if (!checked.ok) throw new EgressRefused('bad-host', `not a valid host name: ${checked.reason}`);
  let addresses: string[];
  if (checked.ip !== 0) addresses = [checked.host];
  else {
    try {
      addresses = await resolver(checked.host);
    } catch (err) {
      throw new EgressRefused('dns', `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (addresses.length === 0) throw new EgressRefused('dns', `${host} has no address`);
  const problems: string[] = [];
  for (const a of addresses) {
    const problem = addressProblem(a, port, policy, own);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) throw new EgressRefused('address', `${host} resolves to refused addresses (${problems.join('; ')})`);
  return canonicalIp(addresses[0]!);
}

export function connectTo(address: string, port: number, timeoutMs = CONNECT_TIMEOUT_MS): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: address, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new EgressRefused('connect', `connecting to ${address}:${port} timed out`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(new EgressRefused('connect', `cannot connect to ${address}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
  });
}
