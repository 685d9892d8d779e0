// The host side of the guest's only way out: an HTTP proxy (plain requests and CONNECT) and a
// SOCKS5 proxy, one pair per task, applying that task's EgressPolicy and writing its audit log.
// Connections arrive as streams (SSH reverse-forwarded channels from the guest), so no port is
// opened on the host; `listen()` exists for tests and the benchmark.
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { AuditSink, EgressRecord } from './audit';
import { connectTo, defaultResolver, EgressRefused, resolveChecked, type Resolver } from './connect';
import { normalizeHost, type EgressPolicy } from './policy';
import { socksHandshake, socksReply, SOCKS_REPLY } from './socks';
import { hostOnly, sniff } from './sniff';

export type AskAnswer = 'allow-once' | 'allow-task' | 'deny';
export interface AskRequest {
  readonly task: string;
  readonly host: string;
  readonly port: number;
  readonly via: EgressRecord['via'];
}

export interface EgressProxyOptions {
  readonly task: string;
  readonly policy: EgressPolicy;
  readonly audit: AuditSink;
  readonly resolver?: Resolver;
  /** Called for a destination no rule matches; without it such requests are denied. */
  readonly ask?: (req: AskRequest) => Promise<AskAnswer>;
  readonly ownAddresses?: ReadonlySet<string>;
  readonly connectTimeoutMs?: number;
}

const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/** How long a tunnel waits for the client's first bytes before passing it on unchecked (server-speaks-first protocols). */
export const SNIFF_WAIT_MS = 2_000;

type Authorized = { allowed: true; rule: string; address: string } | { allowed: false; rule: string; reason: string };

export class EgressProxy extends EventEmitter<{ decision: [EgressRecord] }> {
  private readonly server: http.Server;
  private readonly open = new Set<Duplex>();
  private readonly servers: net.Server[] = [];

  constructor(private readonly opts: EgressProxyOptions) {
    super();
    this.server = http.createServer({ requestTimeout: 0 });
    this.server.on('request', (req, res) => void this.onRequest(req, res));
    this.server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.onConnect(req, socket, head));
    this.server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  /** Adds a destination to this task's allowed list (never the model API or the denied list). */
  allow(host: string): void {
    this.opts.policy.grant(host);
  }

  /** A connection from the guest's localhost:3128. */
  handleHttp(stream: Duplex): void {
    this.track(stream);
    this.server.emit('connection', stream);
  }

  /** A connection from the guest's localhost:1080. */
  handleSocks(stream: Duplex): void {
    this.track(stream);
    void this.onSocks(stream);
  }

  /** Listens on 127.0.0.1 (tests, benchmark). */
  async listen(): Promise<{ httpPort: number; socksPort: number }> {
    const mk = (handler: (s: Duplex) => void): Promise<number> =>
      new Promise((resolve) => {
        const srv = net.createServer((s) => handler(s));
        this.servers.push(srv);
        srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port));
      });
    return { httpPort: await mk((s) => this.handleHttp(s)), socksPort: await mk((s) => this.handleSocks(s)) };
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await Promise.all(this.servers.map((l) => new Promise((r) => l.close(r))));
    this.server.close();
  }

  private track(s: Duplex): void {
    this.open.add(s);
    s.once('close', () => this.open.delete(s));
    s.on('error', () => undefined);
  }

  private record(r: Omit<EgressRecord, 'time' | 'task'>): void {
    const full: EgressRecord = { time: new Date().toISOString(), task: this.opts.task, ...r };
    this.opts.audit.write(full);
    this.emit('decision', full);
  }

  private async authorize(via: EgressRecord['via'], rawHost: string, port: number): Promise<Authorized> {
    const host = normalizeHost(rawHost);
    let verdict = this.opts.policy.decide(host, port);
    if (!verdict && this.opts.ask) {
      const answer = await this.opts.ask({ task: this.opts.task, host, port, via }).catch(() => 'deny' as const);
      if (answer === 'allow-task') {
        this.opts.policy.grant(host);
        verdict = { allowed: true, rule: `granted:${host}` };
      } else if (answer === 'allow-once') verdict = { allowed: true, rule: `once:${host}` };
    }
    verdict ??= { allowed: false, rule: 'default-deny', reason: `${host} is not on the allowed list` };
    if (!verdict.allowed) return verdict;
    try {
      const address = await resolveChecked(host, port, this.opts.policy, this.opts.resolver ?? defaultResolver, this.opts.ownAddresses);
      return { allowed: true, rule: verdict.rule, address };
    } catch (err) {
      if (err instanceof EgressRefused) return { allowed: false, rule: err.rule, reason: err.message };
      throw err;
    }
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = Date.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '');
      if (url.protocol !== 'http:') throw new Error('not http');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('Cowork egress proxy: send absolute http:// URLs (use CONNECT for https).\n');
      return;
    }
    const host = normalizeHost(url.hostname);
    const port = url.port ? Number(url.port) : 80;
    const method = req.method ?? 'GET';
    const hostHeader = req.headers.host;
    if (hostHeader !== undefined && hostOnly(hostHeader) !== host) {
      const reason = `Host header "${hostHeader}" does not match the request's host ${host}`;
      this.record({ via: 'http', host, port, method, allowed: false, rule: 'host-mismatch', reason, bytesUp: 0, bytesDown: 0 });
      res.writeHead(403, { 'content-type': 'text/plain', 'x-cowork-denied': 'host-mismatch' }).end(`Cowork egress proxy: ${reason}.\n`);
      return;
    }
    const auth = await this.authorize('http', host, port);
    if (!auth.allowed) {
      this.record({ via: 'http', host, port, method, allowed: false, rule: auth.rule, reason: auth.reason, bytesUp: 0, bytesDown: 0 });
      res.writeHead(403, { 'content-type': 'text/plain', 'x-cowork-denied': auth.rule }).end(`Cowork egress proxy: ${auth.reason}. The person can allow it for this task from the Cowork panel.\n`);
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.includes(k) && v !== undefined) headers[k] = v;
    headers.host = hostHeader ?? url.host;
    let up = 0;
    let down = 0;
    const upstream = http.request({ host: auth.address, port, method, path: `${url.pathname}${url.search}`, headers, setHost: false, agent: false, timeout: this.opts.connectTimeoutMs ?? 10_000 });
    const finish = (): void => this.record({ via: 'http', host, port, method, allowed: true, rule: auth.rule, address: auth.address, bytesUp: up, bytesDown: down, durationMs: Date.now() - t0 });
    upstream.on('response', (ures) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(ures.headers)) if (!HOP_BY_HOP.includes(k) && v !== undefined) out[k] = v;
      res.writeHead(ures.statusCode ?? 502, ures.statusMessage, out);
      ures.on('data', (c: Buffer) => (down += c.length));
      ures.pipe(res);
      ures.on('end', finish);
    });
    upstream.on('timeout', () => upstream.destroy(new Error('timeout')));
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`Cowork egress proxy: upstream error: ${err.message}\n`);
      else res.destroy();
      finish();
    });
    req.on('data', (c: Buffer) => (up += c.length));
    req.pipe(upstream);
  }

  private async onConnect(req: http.IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const target = parseHostPort(req.url ?? '');
    if (!target) {
      client.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\r\nCONNECT needs host:port\n');
      return;
    }
    const { host, port } = target;
    const hostHeader = req.headers.host;
    if (hostHeader !== undefined && hostOnly(hostHeader) !== host) {
      const reason = `Host header "${hostHeader}" does not match the CONNECT target ${host}`;
      this.record({ via: 'connect', host, port, method: 'CONNECT', allowed: false, rule: 'host-mismatch', reason, bytesUp: 0, bytesDown: 0 });
      client.end(`HTTP/1.1 403 Forbidden\r\nx-cowork-denied: host-mismatch\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${reason}.\n`);
      return;
    }
    const auth = await this.authorize('connect', host, port);
    if (!auth.allowed) {
      this.record({ via: 'connect', host, port, method: 'CONNECT', allowed: false, rule: auth.rule, reason: auth.reason, bytesUp: 0, bytesDown: 0 });
      client.end(`HTTP/1.1 403 Forbidden\r\nx-cowork-denied: ${auth.rule}\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${auth.reason}. The person can allow it for this task from the Cowork panel.\n`);
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await connectTo(auth.address, port, this.opts.connectTimeoutMs);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.record({ via: 'connect', host, port, method: 'CONNECT', allowed: false, rule: 'connect', reason, bytesUp: 0, bytesDown: 0 });
      client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${reason}\n`);
      return;
    }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.tunnel('connect', host, port, auth, client, upstream, head);
  }

  private async onSocks(client: Duplex): Promise<void> {
    let req;
    try {
      req = await socksHandshake(client);
    } catch {
      client.destroy();
      return;
    }
    if (req.command !== 'connect') {
      client.end(socksReply(SOCKS_REPLY.commandNotSupported));
      return;
    }
    const { host, port } = req;
    const auth = await this.authorize('socks', host, port);
    if (!auth.allowed) {
      this.record({ via: 'socks', host, port, allowed: false, rule: auth.rule, reason: auth.reason, bytesUp: 0, bytesDown: 0 });
      client.end(socksReply(SOCKS_REPLY.notAllowed));
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await connectTo(auth.address, port, this.opts.connectTimeoutMs);
    } catch (err) {
      this.record({ via: 'socks', host, port, allowed: false, rule: 'connect', reason: err instanceof Error ? err.message : String(err), bytesUp: 0, bytesDown: 0 });
      client.end(socksReply(SOCKS_REPLY.hostUnreachable));
      return;
    }
    client.write(socksReply(SOCKS_REPLY.succeeded));
    this.tunnel('socks', host, port, auth, client, upstream, req.rest);
  }

  /** Pipes an allowed tunnel after checking that its first bytes (TLS SNI / HTTP Host) name the same host. */
  private tunnel(via: 'connect' | 'socks', host: string, port: number, auth: Extract<Authorized, { allowed: true }>, client: Duplex, upstream: net.Socket, head: Buffer): void {
    const t0 = Date.now();
    let up = 0;
    let down = 0;
    let refused = false;
    const method = via === 'connect' ? 'CONNECT' : undefined;
    const start = (first: Buffer): void => {
      if (first.length > 0) {
        const s = sniff(first);
        const named = s.kind === 'tls' ? s.sni : s.kind === 'http' && s.host !== undefined ? hostOnly(s.host) : undefined;
        if (named !== undefined && normalizeHost(named) !== host) {
          refused = true;
          const reason = `${s.kind === 'tls' ? 'TLS SNI' : 'Host header'} "${named}" does not match the tunnel's host ${host}`;
          this.record({ via, host, port, method, allowed: false, rule: 'host-mismatch', reason, bytesUp: 0, bytesDown: 0 });
          client.destroy();
          upstream.destroy();
          return;
        }
        up += first.length;
        upstream.write(first);
      }
      client.on('data', (c: Buffer) => (up += c.length));
      upstream.on('data', (c: Buffer) => (down += c.length));
      client.pipe(upstream);
      upstream.pipe(client);
    };
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    let closed = 0;
    const onClose = (): void => {
      client.destroy();
      upstream.destroy();
      if (++closed === 2 && !refused) this.record({ via, host, port, method, allowed: true, rule: auth.rule, address: auth.address, bytesUp: up, bytesDown: down, durationMs: Date.now() - t0 });
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
    if (head.length > 0) return start(head);
    const timer = setTimeout(() => {
      client.off('data', onFirst);
      start(Buffer.alloc(0));
    }, SNIFF_WAIT_MS);
    const onFirst = (c: Buffer): void => {
      clearTimeout(timer);
      client.pause();
      client.off('data', onFirst);
      start(c);
      client.resume();
    };
    client.on('data', onFirst);
    client.resume();
  }
}

export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:\s/]+):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: normalizeHost(m[1]!), port };
}
