// The host side of the guest's only way out: an HTTP proxy (plain requests and CONNECT) and a
// SOCKS5 proxy, one pair per task, applying that task's EgressPolicy and writing its audit log.
// Connections arrive on two unix sockets of this VM (`listenOn`, extension/egress/hostSockets.ts:
// QEMU hands each guest connection to them), so no port is opened on the host; `listen()` (TCP on
// 127.0.0.1) exists for tests and the benchmark.
//
// What is checked, in order, on every entry point: the host name's syntax (checkHost), the policy
// (names, ports), every resolved address (connect.ts), then what the client sends: on the plain
// HTTP port every request of a keep-alive connection (target, one Host that matches it); inside a
// CONNECT / SOCKS5 tunnel the first flight (sniff.ts) — a complete TLS ClientHello whose SNI names
// the tunnel's host, or an HTTP/1 request head, after which the tunnel's plain HTTP is served
// request by request by a second HTTP server that holds every request to the tunnel's host.
// Anything else is refused and recorded. Every tunnel leaves one record, however it ends.
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { BlockedList, DenialCoalescer, type AuditSink, type EgressRecord } from './audit';
import { listenEgressSockets, type EgressSocketPaths } from './hostSockets';
import { connectTo, defaultResolver, EgressRefused, resolveChecked, type Resolver } from './connect';
import { checkHost, displayHost, splitHostPort } from './hostname';
import type { EgressPolicy } from './policy';
import { authorityMatches, FIRST_FLIGHT_MAX_BYTES, inspectFirstFlight } from './sniff';
import { socksHandshake, socksReply, SOCKS_REPLY } from './socks';

export interface EgressProxyOptions {
  readonly task: string;
  readonly policy: EgressPolicy;
  readonly audit: AuditSink;
  readonly resolver?: Resolver;
  readonly ownAddresses?: ReadonlySet<string>;
  readonly connectTimeoutMs?: number;
  /** How long a tunnel may take to send its complete ClientHello / request head (default INSPECT_TIMEOUT_MS). */
  readonly inspectTimeoutMs?: number;
  /** The window in which identical denials are coalesced (default DENIAL_WINDOW_MS). */
  readonly denialWindowMs?: number;
}

const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/** How long a tunnel waits for the client's complete first flight before it is refused. */
export const INSPECT_TIMEOUT_MS = 10_000;
/** Real clients send a ClientHello in one to three writes; thousands of one-byte writes only cost the host. */
export const FIRST_FLIGHT_MAX_PIECES = 256;

type Authorized = { allowed: true; host: string; rule: string; address: string } | { allowed: false; host: string; rule: string; reason: string };

interface Tunnel {
  readonly via: 'connect' | 'socks';
  readonly host: string;
  readonly port: number;
  readonly rule: string;
  readonly address: string;
  readonly t0: number;
  up: number;
  down: number;
  done: boolean;
  outcome?: string;
}

type Dest = Pick<Tunnel, 'via' | 'host' | 'port' | 'rule' | 'address'> | { readonly via: 'http'; readonly host: string; readonly port: number; readonly rule: string; readonly address: string };
type Denial = Omit<EgressRecord, 'time' | 'task' | 'allowed' | 'bytesUp' | 'bytesDown'>;

export class EgressProxy extends EventEmitter<{ decision: [EgressRecord] }> {
  /** The guest's HTTP proxy: absolute-form requests and CONNECT. */
  private readonly server: http.Server;
  /** Plain HTTP found inside an allowed tunnel: every request is held to the tunnel's host. */
  private readonly inTunnel: http.Server;
  private readonly tunnels = new WeakMap<Duplex, Tunnel>();
  private readonly open = new Set<Duplex>();
  private readonly servers: net.Server[] = [];
  private readonly closers: (() => Promise<void>)[] = [];
  private readonly coalescer: DenialCoalescer;
  private readonly blockedList = new BlockedList();

  constructor(private readonly opts: EgressProxyOptions) {
    super();
    this.coalescer = new DenialCoalescer((r) => this.publish(r), opts.denialWindowMs);
    this.server = http.createServer({ requestTimeout: 0 });
    this.server.on('request', (req, res) => void this.onRequest(req, res));
    this.server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.onConnect(req, socket, head));
    this.server.on('clientError', (err: Error, socket: Duplex) => this.onClientError('http', err, socket));
    this.inTunnel = http.createServer({ requestTimeout: 0 });
    this.inTunnel.on('request', (req, res) => this.onTunnelRequest(req, res));
    this.inTunnel.on('connect', (_req: http.IncomingMessage, socket: Duplex) => this.refuseInTunnel(socket, 'CONNECT inside a tunnel is not accepted'));
    this.inTunnel.on('clientError', (err: Error, socket: Duplex) => this.refuseInTunnel(socket, `unparseable HTTP inside the tunnel (${(err as NodeJS.ErrnoException).code ?? err.message})`));
  }

  /** Adds a destination to this task's allowed list (never the model API or the denied list). */
  allow(host: string): void {
    this.opts.policy.grant(host);
  }

  /** The latest denials (at most BLOCKED_KEEP; coalesced ones carry a count) and how many in all. */
  get blocked(): { readonly recent: readonly EgressRecord[]; readonly total: number } {
    return { recent: this.blockedList.recent, total: this.blockedList.total };
  }

  /** A connection from the sandbox's 127.0.0.1:3128. */
  handleHttp(stream: Duplex): void {
    this.track(stream);
    this.server.emit('connection', stream);
  }

  /** A connection from the sandbox's 127.0.0.1:1080. */
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

  /** Listens on this VM's two unix sockets (extension/egress/hostSockets.ts); close() removes them. */
  async listenOn(paths: EgressSocketPaths): Promise<void> {
    this.closers.push(await listenEgressSockets(paths, (s) => this.handleHttp(s), (s) => this.handleSocks(s)));
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    this.coalescer.flush();
    await Promise.all(this.servers.map((l) => new Promise((r) => l.close(r))));
    await Promise.all(this.closers.map((c) => c()));
    this.server.close();
    this.inTunnel.close();
  }

  private track(s: Duplex): void {
    this.open.add(s);
    s.once('close', () => this.open.delete(s));
    s.on('error', () => undefined);
  }

  private record(r: Omit<EgressRecord, 'time' | 'task'>): void {
    this.coalescer.push({ time: new Date().toISOString(), task: this.opts.task, ...r });
  }

  private deny(r: Denial): void {
    this.record({ ...r, allowed: false, bytesUp: 0, bytesDown: 0 });
  }

  private publish(r: EgressRecord): void {
    this.opts.audit.write(r);
    this.blockedList.add(r);
    this.emit('decision', r);
  }

  private async authorize(via: EgressRecord['via'], rawHost: string, port: number): Promise<Authorized> {
    const checked = checkHost(rawHost);
    if (!checked.ok) return { allowed: false, host: displayHost(rawHost), rule: 'bad-host', reason: `not a valid host name: ${checked.reason}` };
    const host = checked.host;
    // No rule → denied, never a prompt that holds the command: the panel lists the refusal with
    // "Allow for this task" (allow()), and the agent's retry then goes through. A blocking
    // question would stall unattended tasks and train people to click Allow (approval fatigue).
    let verdict = this.opts.policy.decide(host, port);
    verdict ??= { allowed: false, rule: 'default-deny', reason: `${host} is not on the allowed list` };
    if (!verdict.allowed) return { ...verdict, host };
    try {
      const address = await resolveChecked(host, port, this.opts.policy, this.opts.resolver ?? defaultResolver, this.opts.ownAddresses);
      return { allowed: true, host, rule: verdict.rule, address };
    } catch (err) {
      if (err instanceof EgressRefused) return { allowed: false, host, rule: err.rule, reason: err.message };
      throw err;
    }
  }

  // ---- the plain HTTP proxy ---------------------------------------------------------------------

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = Date.now();
    const method = req.method ?? 'GET';
    const target = parseAbsoluteHttp(req.url ?? '');
    if (!target.ok) {
      this.deny({ via: 'http', host: target.host ?? '', port: 0, method, rule: target.rule, reason: target.reason });
      refuseResponse(res, 400, target.rule, `${target.reason} (send absolute http:// URLs; use CONNECT for https)`);
      return;
    }
    const { host, port } = target;
    const hostHeader = oneHost(req);
    if (hostHeader !== undefined) {
      const m = hostHeader === null ? { ok: false as const, reason: 'more than one Host header' } : authorityMatches(hostHeader, host, port, 80);
      if (!m.ok) {
        const reason = `the Host header does not match the request's host ${host}: ${m.reason}`;
        this.deny({ via: 'http', host, port, method, rule: 'host-mismatch', reason });
        refuseResponse(res, 403, 'host-mismatch', reason);
        return;
      }
    }
    const auth = await this.authorize('http', host, port);
    if (!auth.allowed) {
      this.deny({ via: 'http', host: auth.host, port, method, rule: auth.rule, reason: auth.reason });
      refuseResponse(res, 403, auth.rule, `${auth.reason}. The person can allow it for this task from the Cowork panel`);
      return;
    }
    this.forward(req, res, { via: 'http', host, port, rule: auth.rule, address: auth.address }, target.path, hostHeader ?? target.authority, t0);
  }

  /** Sends one checked request to the checked address and its response back; one record when it ends. */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, dest: Dest, reqPath: string, hostHeader: string, t0: number, count?: (up: number, down: number) => void): void {
    const method = req.method ?? 'GET';
    const drop = new Set([...HOP_BY_HOP, ...String(req.headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim())]);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!drop.has(k) && v !== undefined) headers[k] = v;
    headers.host = hostHeader;
    let up = 0;
    let down = 0;
    let done = false;
    const finish = (outcome: string): void => {
      if (done) return;
      done = true;
      count?.(up, down);
      this.record({ via: dest.via, host: dest.host, port: dest.port, method, allowed: true, rule: dest.rule, address: dest.address, bytesUp: up, bytesDown: down, durationMs: Date.now() - t0, outcome });
    };
    const upstream = http.request({ host: dest.address, port: dest.port, method, path: reqPath, headers, setHost: false, agent: false, timeout: this.opts.connectTimeoutMs ?? 10_000 });
    upstream.on('response', (ures) => {
      const out: http.OutgoingHttpHeaders = {};
      const dropDown = new Set([...HOP_BY_HOP, ...String(ures.headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim())]);
      for (const [k, v] of Object.entries(ures.headers)) if (!dropDown.has(k) && v !== undefined) out[k] = v;
      res.writeHead(ures.statusCode ?? 502, ures.statusMessage, out);
      ures.on('data', (c: Buffer) => (down += c.length));
      ures.pipe(res);
      ures.on('end', () => finish('complete'));
      ures.on('error', () => finish('server closed'));
    });
    upstream.on('timeout', () => upstream.destroy(new Error('timeout')));
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`Cowork egress proxy: upstream error: ${err.message}\n`);
      else res.destroy();
      finish(`error: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
    });
    res.on('close', () => {
      if (!done) {
        upstream.destroy();
        finish('client closed');
      }
    });
    req.on('data', (c: Buffer) => (up += c.length));
    req.pipe(upstream);
  }

  private onClientError(via: 'http', err: Error, socket: Duplex): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      socket.destroy(); // the client went away: nothing was asked for, nothing to record
      return;
    }
    const raw = (err as { rawPacket?: unknown }).rawPacket;
    const h2 = Buffer.isBuffer(raw) && raw.toString('latin1').startsWith('PRI * HTTP/2');
    const reason = h2 ? 'HTTP/2 with prior knowledge is not accepted (use HTTP/1.1 or TLS)' : `not an HTTP/1 request (${(err as NodeJS.ErrnoException).code ?? err.message})`;
    this.deny({ via, host: '', port: 0, rule: 'bad-request', reason });
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ' + reason + '\n');
    socket.destroy();
  }

  // ---- tunnels: CONNECT and SOCKS5 --------------------------------------------------------------

  private async onConnect(req: http.IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const target = splitHostPort(req.url ?? '');
    if (!target.ok) {
      const reason = `the CONNECT target is not host:port: ${target.reason}`;
      this.deny({ via: 'connect', host: displayHost(req.url ?? ''), port: 0, method: 'CONNECT', rule: 'bad-host', reason });
      client.end(`HTTP/1.1 400 Bad Request\r\nx-cowork-denied: bad-host\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${reason}\n`);
      return;
    }
    const { host, port } = target;
    const hostHeader = oneHost(req);
    if (hostHeader !== undefined) {
      const m = hostHeader === null ? { ok: false as const, reason: 'more than one Host header' } : authorityMatches(hostHeader, host, port, port);
      if (!m.ok) {
        const reason = `the Host header does not match the CONNECT target ${host}: ${m.reason}`;
        this.deny({ via: 'connect', host, port, method: 'CONNECT', rule: 'host-mismatch', reason });
        client.end(`HTTP/1.1 403 Forbidden\r\nx-cowork-denied: host-mismatch\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${reason}.\n`);
        return;
      }
    }
    const auth = await this.authorize('connect', host, port);
    if (!auth.allowed) {
      this.deny({ via: 'connect', host: auth.host, port, method: 'CONNECT', rule: auth.rule, reason: auth.reason });
      client.end(`HTTP/1.1 403 Forbidden\r\nx-cowork-denied: ${auth.rule}\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${auth.reason}. The person can allow it for this task from the Cowork panel.\n`);
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await connectTo(auth.address, port, this.opts.connectTimeoutMs);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.deny({ via: 'connect', host, port, method: 'CONNECT', rule: 'connect', reason });
      client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\nCowork egress proxy: ${reason}\n`);
      return;
    }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.tunnel({ via: 'connect', host, port, rule: auth.rule, address: auth.address }, client, upstream, head);
  }

  private async onSocks(client: Duplex): Promise<void> {
    let req;
    try {
      req = await socksHandshake(client);
    } catch (err) {
      this.deny({ via: 'socks', host: '', port: 0, rule: 'bad-request', reason: `SOCKS handshake failed: ${err instanceof Error ? err.message : String(err)}` });
      client.destroy();
      return;
    }
    if (req.command !== 'connect') {
      this.deny({ via: 'socks', host: displayHost(req.host), port: req.port, rule: 'socks-command', reason: `SOCKS ${req.command} is not supported` });
      client.end(socksReply(SOCKS_REPLY.commandNotSupported));
      return;
    }
    const { port } = req;
    const auth = await this.authorize('socks', req.host, port);
    if (!auth.allowed) {
      this.deny({ via: 'socks', host: auth.host, port, rule: auth.rule, reason: auth.reason });
      client.end(socksReply(SOCKS_REPLY.notAllowed));
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await connectTo(auth.address, port, this.opts.connectTimeoutMs);
    } catch (err) {
      this.deny({ via: 'socks', host: auth.host, port, rule: 'connect', reason: err instanceof Error ? err.message : String(err) });
      client.end(socksReply(SOCKS_REPLY.hostUnreachable));
      return;
    }
    client.write(socksReply(SOCKS_REPLY.succeeded));
    this.tunnel({ via: 'socks', host: auth.host, port, rule: auth.rule, address: auth.address }, client, upstream, req.rest);
  }

  /**
   * An allowed tunnel: nothing passes until the client's first flight is complete and names the
   * tunnel's host. TLS is then piped as is; plain HTTP goes to the in-tunnel server, request by request.
   */
  private tunnel(dest: Omit<Tunnel, 't0' | 'up' | 'down' | 'done'>, client: Duplex, upstream: net.Socket, head: Buffer): void {
    const t: Tunnel = { ...dest, t0: Date.now(), up: 0, down: 0, done: false };
    const { via, host, port } = t;
    const method = via === 'connect' ? 'CONNECT' : undefined;
    let piped = false;
    const end = (outcome: string): void => {
      if (t.done) return;
      t.done = true;
      // a piped (TLS) tunnel is counted by the upstream socket itself: no JavaScript per chunk
      if (piped) {
        t.up = upstream.bytesWritten;
        t.down = upstream.bytesRead;
      }
      client.destroy();
      upstream.destroy();
      this.record({ via, host, port, method, allowed: true, rule: t.rule, address: t.address, bytesUp: t.up, bytesDown: t.down, durationMs: Date.now() - t.t0, outcome: t.outcome ?? outcome });
    };
    const refuse = (rule: string, reason: string): void => {
      if (t.done) return;
      t.done = true;
      stopInspecting();
      client.destroy();
      upstream.destroy();
      this.deny({ via, host, port, method, rule, reason, address: t.address, durationMs: Date.now() - t.t0 });
    };
    const onUpstreamClose = (): void => end('server closed');
    client.once('close', () => end('client closed'));
    upstream.once('close', onUpstreamClose);
    client.on('error', (err: NodeJS.ErrnoException) => end(`error: client ${err.code ?? err.message}`));
    upstream.on('error', (err: NodeJS.ErrnoException) => end(`error: server ${err.code ?? err.message}`));

    upstream.pause(); // nothing from the far end reaches the client before the check
    const pieces: Buffer[] = head.length > 0 ? [head] : [];
    let buffered = head.length;
    const limitMs = this.opts.inspectTimeoutMs ?? INSPECT_TIMEOUT_MS;
    const timer = setTimeout(() => refuse('inspect', `no complete TLS ClientHello or HTTP request head within ${limitMs} ms`), limitMs);
    const onData = (c: Buffer): void => {
      pieces.push(c);
      buffered += c.length;
      if (pieces.length > FIRST_FLIGHT_MAX_PIECES) return refuse('inspect', `the first flight came in more than ${FIRST_FLIGHT_MAX_PIECES} pieces`);
      if (buffered > FIRST_FLIGHT_MAX_BYTES + 16 * 1024) return refuse('inspect', 'the first flight is too large');
      judge();
    };
    const onEnd = (): void => {
      if (buffered === 0) end('client closed before sending anything');
      else refuse('inspect', 'the client closed the tunnel before a complete TLS ClientHello or HTTP request head');
    };
    function stopInspecting(): void {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
    }
    const judge = (): void => {
      const first = Buffer.concat(pieces);
      const r = inspectFirstFlight(first);
      switch (r.kind) {
        case 'more':
          return;
        case 'refuse':
          return refuse('inspect', r.reason);
        case 'tls': {
          // Without SNI the only check left is the address, so only a tunnel to a listed IP literal may omit it.
          if (r.sni === undefined && net.isIP(host) === 0) return refuse('host-mismatch', `the TLS ClientHello names no server (no SNI), and the tunnel is to ${host}`);
          if (r.sni !== undefined && r.sni !== host) return refuse('host-mismatch', `TLS SNI "${r.sni}" does not match the tunnel's host ${host}`);
          stopInspecting();
          piped = true;
          upstream.write(first);
          client.pipe(upstream);
          upstream.pipe(client);
          upstream.resume();
          return;
        }
        case 'http': {
          const m = authorityMatches(r.host, host, port, port);
          if (!m.ok) return refuse('host-mismatch', `Host header "${displayHost(r.host)}" does not match the tunnel's host ${host}: ${m.reason}`);
          stopInspecting();
          // Each request makes its own connection to the checked address, so the one opened for the tunnel goes.
          upstream.off('close', onUpstreamClose);
          upstream.destroy();
          client.pause();
          client.unshift(first);
          this.tunnels.set(client, t);
          this.inTunnel.emit('connection', client);
          client.resume();
          return;
        }
      }
    };
    client.on('data', onData);
    client.once('end', onEnd);
    if (buffered > 0) judge();
    if (!t.done) client.resume();
  }

  /** One request of a tunnel's plain HTTP: its target and its one Host must name the tunnel's host and port. */
  private onTunnelRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t = this.tunnels.get(req.socket);
    if (!t || t.done) {
      res.destroy();
      return;
    }
    const t0 = Date.now();
    const method = req.method ?? 'GET';
    const refuse = (reason: string): void => {
      t.outcome = `closed after a refused request (${reason})`;
      this.deny({ via: t.via, host: t.host, port: t.port, method, rule: 'host-mismatch', reason });
      refuseResponse(res, 403, 'host-mismatch', reason);
    };
    let reqPath = req.url ?? '';
    if (/^http:\/\//i.test(reqPath)) {
      const a = parseAbsoluteHttp(reqPath);
      if (!a.ok || a.host !== t.host || a.port !== t.port) return refuse(`the request target ${displayHost(reqPath.slice(0, 300))} is not the tunnel's host ${t.host}:${t.port}`);
      reqPath = a.path;
    } else if (!reqPath.startsWith('/')) return refuse('the request target is not a path on the tunnel\'s host');
    const hostHeader = oneHost(req);
    if (hostHeader === undefined || hostHeader === null) return refuse(hostHeader === null ? 'more than one Host header' : 'no Host header');
    const m = authorityMatches(hostHeader, t.host, t.port, t.port);
    if (!m.ok) return refuse(`Host header does not match the tunnel's host ${t.host}: ${m.reason}`);
    this.forward(req, res, t, reqPath, hostHeader, t0, (up, down) => {
      t.up += up;
      t.down += down;
    });
  }

  private refuseInTunnel(socket: Duplex, reason: string): void {
    const t = this.tunnels.get(socket);
    if (t && !t.done) {
      t.outcome = `closed after a refused request (${reason})`;
      this.deny({ via: t.via, host: t.host, port: t.port, rule: 'inspect', reason });
    }
    socket.destroy();
  }
}

/** The one Host header of a request; undefined when there is none, null when there are several. */
function oneHost(req: http.IncomingMessage): string | null | undefined {
  let found: string | undefined;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'host') continue;
    if (found !== undefined) return null;
    found = req.rawHeaders[i + 1]!;
  }
  return found;
}

function refuseResponse(res: http.ServerResponse, status: number, rule: string, reason: string): void {
  // The connection closes after a refusal: nothing pipelined behind a refused request is served.
  res.writeHead(status, { 'content-type': 'text/plain', 'x-cowork-denied': rule, connection: 'close' }).end(`Cowork egress proxy: ${reason}.\n`);
}

type AbsoluteHttp = { ok: true; host: string; port: number; path: string; authority: string } | { ok: false; rule: string; reason: string; host?: string };

/** "http://host[:port]/path?query" → its parts; the host checked by checkHost, nothing decoded or normalised. */
export function parseAbsoluteHttp(url: string): AbsoluteHttp {
  const m = /^http:\/\/([^/?#]*)([/?][^#]*)?$/i.exec(url);
  if (!m) return { ok: false, rule: 'bad-request', reason: 'the request target is not an absolute http:// URL' };
  const authority = m[1]!;
  if (authority.includes('@')) return { ok: false, rule: 'bad-host', reason: 'the URL carries user information', host: displayHost(authority) };
  const hp = splitHostPort(authority, 80);
  if (!hp.ok) return { ok: false, rule: 'bad-host', reason: `not a valid host name: ${hp.reason}`, host: displayHost(authority) };
  const rest = m[2] ?? '/';
  return { ok: true, host: hp.host, port: hp.port, path: rest.startsWith('?') ? `/${rest}` : rest, authority };
}

/** Kept for callers of the old name: "[v6]:port" / "host:port" → checked parts, or undefined. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const r = splitHostPort(s);
  return r.ok ? { host: r.host, port: r.port } : undefined;
}
