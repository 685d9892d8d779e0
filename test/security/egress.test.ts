// Security attempts on the egress proxy (issue 10, class 7 and the audit-log part of class 8): the
// real EgressProxy, reached through its HTTP and SOCKS5 entry points as the guest reaches them
// (handleHttp / handleSocks, here behind proxy.listen() on loopback), real loopback TCP servers and
// real TLS (node:tls with a self-signed certificate made by openssl in this test). Names resolve
// through a test resolver, so each DNS answer an attacker could arrange is played exactly.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { JsonlAudit, MemoryAudit, type EgressRecord } from '../../extension/egress/audit';
import { ipBytes } from '../../extension/egress/addresses';
import { egressSocketDir, egressSocketPaths, ensureEgressSocketDir, MAX_CONNECTIONS_PER_VM, egressSocketBase } from '../../extension/egress/hostSockets';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy } from '../../extension/egress/proxy';
import { inspectFirstFlight } from '../../extension/egress/sniff';
import { attempt } from '../support/attempts';

const A = 'egress';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'cowork-egress-sec-'));

// ---- real servers -------------------------------------------------------------------------------

let cert: { key: Buffer; cert: Buffer };
let tlsServer: tls.Server;
let tlsPort: number;
const tlsSeen: string[] = []; // SNI of every completed handshake
let httpServer: http.Server;
let httpPort: number;
const httpSeen: string[] = []; // "host url" of every request the allowed server answered
/** Records every byte that reaches it: refused tunnels must leave it at zero. */
let sink: net.Server;
let sinkPort: number;
let sinkBytes = 0;
/** Closes each connection as soon as it has read something (the far end closes first). */
let closer: net.Server;
let closerPort: number;
/** Resets each connection after reading (the far end errors). */
let resetter: net.Server;
let resetterPort: number;

// ---- the proxy ----------------------------------------------------------------------------------

const audit = new MemoryAudit();
let proxy: EgressProxy;
let ports: { httpPort: number; socksPort: number };
let resolverCalls: string[] = [];
let rebindCount = 0;
const ownAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && !a.internal && a.family === 'IPv4')?.address;

const names = (): Record<string, string[]> => ({
  'good.test': ['127.0.0.1'],
  'evil.test': ['127.0.0.1'],
  'closer.test': ['127.0.0.1'],
  'resetter.test': ['127.0.0.1'],
  'pkg.npmjs.org': ['127.0.0.1'],
  'mapped.npmjs.org': ['::ffff:127.0.0.1'],
  'mapped-hex.npmjs.org': ['::ffff:7f00:1'],
  'mapped-meta.npmjs.org': ['::ffff:169.254.169.254'],
  'nat64-meta.npmjs.org': ['64:ff9b::a9fe:a9fe'],
  'nat64-loop.npmjs.org': ['64:ff9b::7f00:1'],
  'nat64-local.npmjs.org': ['64:ff9b:1::5db8:d822'],
  'sixtofour.npmjs.org': ['2002:7f00:1::1'],
  'sixtofour-meta.npmjs.org': ['2002:a9fe:a9fe::1'],
  'teredo.npmjs.org': ['2001:0:4136:e378:8000:63bf:3fff:fdd2'],
  'compat.npmjs.org': ['::127.0.0.1'],
  'siit.npmjs.org': ['::ffff:0:a9fe:a9fe'],
  'bench.npmjs.org': ['198.18.0.1'],
  'azure.npmjs.org': ['168.63.129.16'],
  'alibaba.npmjs.org': ['100.100.100.200'],
  'ec2v6.npmjs.org': ['fd00:ec2::254'],
  'meta.npmjs.org': ['169.254.169.254'],
  'sitelocal.npmjs.org': ['fec0::1'],
  'ula.npmjs.org': ['fd12:3456::1'],
  'cgnat.npmjs.org': ['100.64.1.1'],
  'doc.npmjs.org': ['192.0.2.1'],
  'mcast.npmjs.org': ['239.1.1.1'],
  'bcast.npmjs.org': ['255.255.255.255'],
  'zero.npmjs.org': ['0.0.0.0'],
  'linklocal6.npmjs.org': ['fe80::1'],
  'mixed.npmjs.org': ['93.184.216.34', '10.0.0.1'],
  'mixed6.npmjs.org': ['2606:2800:220:1:248:1893:25c8:1946', '::1'],
  ...(ownAddress ? { 'own.npmjs.org': [ownAddress] } : {}),
});

before(async () => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=good.test', '-days', '1', '-keyout', path.join(tmp, 'key.pem'), '-out', path.join(tmp, 'cert.pem')], { stdio: 'ignore' });
  cert = { key: readFileSync(path.join(tmp, 'key.pem')), cert: readFileSync(path.join(tmp, 'cert.pem')) };
  tlsServer = tls.createServer({ ...cert }, (s) => {
    tlsSeen.push((s as tls.TLSSocket & { servername?: string | false }).servername || '(none)');
    s.end(`tls hello ${(s as tls.TLSSocket & { servername?: string | false }).servername || '(none)'}\n`);
  });
  tlsServer.on('tlsClientError', () => undefined);
  httpServer = http.createServer((req, res) => {
    httpSeen.push(`${req.headers.host} ${req.url}`);
    res.end(`hello ${req.headers.host} ${req.url}`);
  });
  sink = net.createServer((s) => {
    s.on('data', (c: Buffer) => (sinkBytes += c.length));
    s.on('error', () => undefined);
  });
  closer = net.createServer((s) => s.once('data', () => s.end()));
  resetter = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
  const listen = (srv: net.Server): Promise<number> => new Promise((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
  [tlsPort, httpPort, sinkPort, closerPort, resetterPort] = await Promise.all([listen(tlsServer), listen(httpServer), listen(sink), listen(closer), listen(resetter)]);
  proxy = new EgressProxy({
    task: 'egress-security',
    policy: new EgressPolicy({
      allowed: [
        ...['good.test', 'closer.test', 'resetter.test'].flatMap((h) => [tlsPort, httpPort, sinkPort, closerPort, resetterPort].map((p) => `${h}:${p}`)),
        ...[tlsPort, httpPort, sinkPort, closerPort, resetterPort].map((p) => `127.0.0.1:${p}`),
        `pkg.npmjs.org:${sinkPort}`,
        `rebind.test:${sinkPort}`,
        '*.npmjs.org',
        '[::ffff:169.254.169.254]',
      ],
      denied: ['denied.test'],
    }),
    audit,
    resolver: (h) => {
      resolverCalls.push(h);
      if (h === 'rebind.test') return Promise.resolve(rebindCount++ === 0 ? ['127.0.0.1'] : ['10.0.0.1']);
      const a = names()[h];
      return a ? Promise.resolve(a) : Promise.reject(Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }));
    },
    inspectTimeoutMs: 400,
  });
  ports = await proxy.listen();
});

after(async () => {
  await proxy?.close();
  for (const s of [tlsServer, httpServer, sink, closer, resetter]) s?.close();
  rmSync(tmp, { recursive: true, force: true });
});

// ---- helpers ------------------------------------------------------------------------------------

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function readAll(s: net.Socket, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for the proxy to close the connection; got ${JSON.stringify(out.slice(0, 200))}`)), ms);
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Raw bytes to the HTTP proxy port; everything it answers until it closes. */
async function rawHttp(bytes: string | Buffer): Promise<string> {
  const s = net.connect(ports.httpPort, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  const all = readAll(s);
  s.write(bytes);
  return all;
}

function connectTunnel(target: string, hostHeader = target): Promise<{ status: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(ports.httpPort, '127.0.0.1', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`));
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      resolve({ status: buf.slice(0, buf.indexOf('\r\n')), socket: s });
    };
    s.on('data', onData);
    s.on('error', reject);
    s.on('close', () => resolve({ status: buf.slice(0, buf.indexOf('\r\n')) || '(closed)', socket: s }));
  });
}

/** A SOCKS5 CONNECT with a raw domain (atyp 3), IPv4 (1) or IPv6 (4) address. */
function socks(host: Buffer | string, port: number, atyp = 3): Promise<{ code: number; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(ports.socksPort, '127.0.0.1', () => s.write(Buffer.from([5, 1, 0])));
    let stage = 0;
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (stage === 0 && buf.length >= 2) {
        buf = buf.subarray(2);
        stage = 1;
        const addr = typeof host === 'string' ? Buffer.from(host, 'latin1') : host;
        const a = atyp === 3 ? Buffer.concat([Buffer.from([addr.length]), addr]) : addr;
        s.write(Buffer.concat([Buffer.from([5, 1, 0, atyp]), a, Buffer.from([port >> 8, port & 255])]));
      }
      if (stage === 1 && buf.length >= 10) {
        stage = 2;
        s.removeAllListeners('data');
        resolve({ code: buf[1]!, socket: s });
      }
    });
    s.on('error', reject);
    s.on('close', () => stage < 2 && resolve({ code: -1, socket: s }));
  });
}

/** The exact bytes node's TLS client sends first (a real ClientHello), captured on a raw socket. */
async function clientHello(servername: string | undefined): Promise<Buffer> {
  const srv = net.createServer();
  const got = new Promise<Buffer>((resolve) =>
    srv.on('connection', (s) => {
      let buf = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (inspectFirstFlight(buf).kind !== 'more') {
          resolve(buf);
          s.destroy();
        }
      });
    }),
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  // With an IP as host and no servername, node sends no SNI at all.
  const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

/** The handshake message of a one-record ClientHello re-framed into records of at most `size` bytes. */
function reframe(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const part = body.subarray(i, i + size);
    const h = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    h.writeUInt16BE(part.length, 3);
    out.push(h, part);
  }
  return Buffer.concat(out);
}

/** Writes `bytes` in pieces of `size`, each in its own TCP write with a pause between. */
async function writeInPieces(s: net.Socket, bytes: Buffer, size: number): Promise<void> {
  for (let i = 0; i < bytes.length; i += size) {
    s.write(bytes.subarray(i, i + size));
    await new Promise((r) => setTimeout(r, 5));
  }
}

const recordsFor = (pred: (r: EgressRecord) => boolean): EgressRecord[] => audit.records.filter(pred);
const lastFor = (host: string): EgressRecord | undefined => audit.records.filter((r) => r.host === host).at(-1);
const since = (n: number): EgressRecord[] => audit.records.slice(n);

/** Sends a TLS first flight through a CONNECT tunnel to host:port; resolves with what came back and the new records. */
async function tlsThroughTunnel(target: string, first: Buffer, pieces?: number): Promise<{ reply: string; records: EgressRecord[] }> {
  const n = audit.records.length;
  const t = await connectTunnel(target);
  assert.match(t.status, / 200 /, `the tunnel to ${target} opens`);
  const reply = readAll(t.socket);
  if (pieces) await writeInPieces(t.socket, first, pieces);
  else t.socket.write(first);
  const out = await reply;
  return { reply: out, records: await waitFor('the tunnel record', () => (since(n).length > 0 ? since(n) : undefined)) };
}

// ---- 1. the first flight of a tunnel ------------------------------------------------------------

describe('egress: a tunnel is inspected on its complete first flight', { timeout: 30_000 }, () => {
  it('control: a real TLS handshake to an allowed name completes through CONNECT and SOCKS5', { timeout: 5000 }, async () => {
    const t = await connectTunnel(`good.test:${tlsPort}`);
    const c = tls.connect({ socket: t.socket, servername: 'good.test', ca: cert.cert, checkServerIdentity: () => undefined });
    assert.equal(await readAll(c as unknown as net.Socket), 'tls hello good.test\n');
    const s = await socks('good.test', tlsPort);
    assert.equal(s.code, 0);
    const c2 = tls.connect({ socket: s.socket, servername: 'good.test', ca: cert.cert, checkServerIdentity: () => undefined });
    assert.equal(await readAll(c2 as unknown as net.Socket), 'tls hello good.test\n');
  });

  it('control: a ClientHello split over 7 records and 40-byte writes still reaches the allowed server whole', { timeout: 5000 }, async () => {
    const hello = await clientHello('good.test');
    const split = reframe(hello, Math.ceil((hello.length - 5) / 7));
    const before = sinkBytes;
    const t = await connectTunnel(`good.test:${sinkPort}`);
    await writeInPieces(t.socket, split, 40);
    await waitFor('the sink to receive the whole ClientHello', () => sinkBytes - before === split.length);
    t.socket.destroy();
  });

  it('attempts', { timeout: 25_000 }, async () => {
    await attempt(A, 'SNI of another host hidden in the third of several TLS records, sent in small TCP writes', async () => {
      const hello = await clientHello('evil.test');
      const split = reframe(hello, 64); // the server_name extension sits far behind byte 128
      assert.ok(split.length > hello.length + 10, 'the hello is really split into several records');
      const before = sinkBytes;
      const r = await tlsThroughTunnel(`good.test:${sinkPort}`, split, 17);
      assert.equal(r.reply, '');
      assert.equal(sinkBytes, before, 'not one byte reached the server');
      assert.equal(r.records.at(-1)!.rule, 'host-mismatch');
      assert.match(r.records.at(-1)!.reason ?? '', /SNI "evil.test"/);
    });

    await attempt(A, 'SNI of another host through SOCKS5 with a real TLS client', async () => {
      const n = audit.records.length;
      const s = await socks('good.test', tlsPort);
      assert.equal(s.code, 0);
      const closed = readAll(s.socket);
      const c = tls.connect({ socket: s.socket, servername: 'evil.test', rejectUnauthorized: false });
      c.on('error', () => undefined);
      await closed;
      assert.ok(!tlsSeen.includes('evil.test'), 'the TLS server never saw evil.test');
      const rec = await waitFor('a refusal record', () => since(n).find((r) => r.rule === 'host-mismatch'));
      assert.equal(rec.via, 'socks');
    });

    await attempt(A, 'ClientHello without SNI through a tunnel to a name', async () => {
      const hello = await clientHello(undefined);
      assert.equal((inspectFirstFlight(hello) as { sni?: string }).sni, undefined, 'the captured hello really has no SNI');
      const before = sinkBytes;
      const r = await tlsThroughTunnel(`good.test:${sinkPort}`, hello);
      assert.equal(sinkBytes, before);
      assert.match(r.records.at(-1)!.reason ?? '', /no SNI/);
    });

    await attempt(A, 'ClientHello without SNI through SOCKS5 to a wildcard-allowed name', async () => {
      const hello = await clientHello(undefined);
      const before = sinkBytes;
      const s = await socks('pkg.npmjs.org', sinkPort);
      assert.equal(s.code, 0);
      const closed = readAll(s.socket);
      s.socket.write(hello);
      assert.equal(await closed, '');
      assert.equal(sinkBytes, before);
      assert.equal(lastFor('pkg.npmjs.org')?.allowed, false);
    });

    // Control inside the attempt: the one case a hello without SNI is fine.
    const t = await connectTunnel(`127.0.0.1:${tlsPort}`);
    const c = tls.connect({ socket: t.socket, host: '127.0.0.1', ca: cert.cert, checkServerIdentity: () => undefined });
    assert.equal(await readAll(c as unknown as net.Socket), 'tls hello (none)\n', 'no SNI to an IP literal listed by exact address passes');

    await attempt(A, 'garbage (an SSH banner) after CONNECT', async () => {
      const before = sinkBytes;
      const r = await tlsThroughTunnel(`good.test:${sinkPort}`, Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'));
      assert.equal(r.reply, '');
      assert.equal(sinkBytes, before);
      assert.equal(r.records.at(-1)!.rule, 'inspect');
      assert.equal(r.records.at(-1)!.allowed, false);
    });

    await attempt(A, 'a TLS application-data record instead of a ClientHello', async () => {
      const before = sinkBytes;
      const r = await tlsThroughTunnel(`good.test:${sinkPort}`, Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x10]), Buffer.alloc(16, 1)]));
      assert.equal(sinkBytes, before);
      assert.equal(r.records.at(-1)!.rule, 'inspect');
    });

    await attempt(A, 'a truncated ClientHello, then silence until the inspection deadline', async () => {
      const hello = await clientHello('good.test');
      const before = sinkBytes;
      const r = await tlsThroughTunnel(`good.test:${sinkPort}`, hello.subarray(0, 100));
      assert.equal(sinkBytes, before);
      assert.match(r.records.at(-1)!.reason ?? '', /within 400 ms/);
    });

    await attempt(A, 'a ClientHello dribbled in one-byte writes (more pieces than any real client)', async () => {
      const hello = await clientHello('good.test');
      const before = sinkBytes;
      const n = audit.records.length;
      // Another host than the previous attempt's, so this refusal is not coalesced into that one's record.
      const tt = await connectTunnel(`closer.test:${sinkPort}`);
      const closed = readAll(tt.socket);
      tt.socket.setNoDelay(true);
      for (let i = 0; i < Math.min(300, hello.length - 1) && !tt.socket.destroyed; i++) {
        tt.socket.write(hello.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, 1));
      }
      await closed;
      assert.equal(sinkBytes, before);
      assert.ok(since(n).some((x) => !x.allowed && x.rule === 'inspect'), 'refused by inspection');
    });

    await attempt(A, 'HTTP/2 prior knowledge inside a tunnel', async () => {
      const before = sinkBytes;
      const r = await tlsThroughTunnel(`good.test:${sinkPort}`, Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00', 'latin1'));
      assert.equal(sinkBytes, before);
      assert.match(r.records.at(-1)!.reason ?? '', /HTTP\/2/);
    });

    await attempt(A, 'HTTP/2 prior knowledge on the plain HTTP proxy port', async () => {
      const n = audit.records.length;
      const reply = await rawHttp('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      assert.ok(!/ 200 /.test(reply));
      const rec = await waitFor('a refusal record', () => since(n).find((x) => x.rule === 'bad-request'));
      assert.match(rec.reason ?? '', /HTTP\/2|not an HTTP\/1 request/);
    });

    await attempt(A, 'plain HTTP in a tunnel naming another host in its Host header', async () => {
      const before = httpSeen.length;
      const tt = await connectTunnel(`good.test:${httpPort}`);
      const reply = readAll(tt.socket);
      tt.socket.write('GET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n');
      assert.equal(await reply, '');
      assert.equal(httpSeen.length, before);
      assert.equal(lastFor('good.test')?.rule, 'host-mismatch');
    });

    await attempt(A, 'plain HTTP in a tunnel: a second, pipelined request for another host', async () => {
      const before = httpSeen.length;
      const tt = await connectTunnel(`good.test:${httpPort}`);
      const reply = readAll(tt.socket);
      tt.socket.write(`GET /one HTTP/1.1\r\nHost: good.test:${httpPort}\r\n\r\nGET /two HTTP/1.1\r\nHost: evil.test:${httpPort}\r\n\r\n`);
      const out = await reply;
      assert.match(out, /hello good.test:\d+ \/one/, 'the first, allowed request was served');
      assert.match(out, /403 Forbidden/);
      assert.deepEqual(httpSeen.slice(before), [`good.test:${httpPort} /one`]);
    });
  });
});

// ---- 2. plain HTTP: every request of a connection ------------------------------------------------

describe('egress: every request on a plain-HTTP connection is checked', { timeout: 15_000 }, () => {
  it('attempts', { timeout: 15_000 }, async () => {
    await attempt(A, 'a pipelined second request to another host on a keep-alive connection', async () => {
      const before = httpSeen.length;
      const n = audit.records.length;
      const out = await rawHttp(
        `GET http://good.test:${httpPort}/a HTTP/1.1\r\nHost: good.test:${httpPort}\r\n\r\n` + `GET http://evil.test:${httpPort}/b HTTP/1.1\r\nHost: evil.test:${httpPort}\r\nConnection: close\r\n\r\n`,
      );
      assert.match(out, /hello good.test:\d+ \/a/);
      assert.match(out, /HTTP\/1.1 403/);
      assert.deepEqual(httpSeen.slice(before), [`good.test:${httpPort} /a`]);
      assert.ok(since(n).some((r) => r.host === 'evil.test' && !r.allowed));
    });

    await attempt(A, 'a pipelined second request whose Host names another host than its URL', async () => {
      const before = httpSeen.length;
      const out = await rawHttp(
        `GET http://good.test:${httpPort}/a HTTP/1.1\r\nHost: good.test:${httpPort}\r\n\r\n` + `GET http://good.test:${httpPort}/b HTTP/1.1\r\nHost: evil.test:${httpPort}\r\nConnection: close\r\n\r\n`,
      );
      assert.match(out, /x-cowork-denied: host-mismatch/);
      assert.deepEqual(httpSeen.slice(before), [`good.test:${httpPort} /a`]);
    });

    await attempt(A, 'absolute-form URL and Host header for different hosts', async () => {
      const before = httpSeen.length;
      const out = await rawHttp(`GET http://good.test:${httpPort}/ HTTP/1.1\r\nHost: evil.test\r\n\r\n`);
      assert.match(out, /^HTTP\/1.1 403/);
      assert.equal(httpSeen.length, before);
    });

    await attempt(A, 'absolute-form URL and Host header for different ports', async () => {
      const before = httpSeen.length;
      const out = await rawHttp(`GET http://good.test:${httpPort}/ HTTP/1.1\r\nHost: good.test:80\r\n\r\n`);
      assert.match(out, /^HTTP\/1.1 403/);
      assert.equal(httpSeen.length, before);
    });

    await attempt(A, 'two Host headers, the first one matching', async () => {
      const before = httpSeen.length;
      const out = await rawHttp(`GET http://good.test:${httpPort}/ HTTP/1.1\r\nHost: good.test:${httpPort}\r\nHost: evil.test\r\n\r\n`);
      assert.match(out, /^HTTP\/1.1 (400|403)/);
      assert.equal(httpSeen.length, before);
    });
  });
});

// ---- 3. ports -----------------------------------------------------------------------------------

describe('egress: an entry without a port covers 80 and 443 only', { timeout: 10_000 }, () => {
  it('attempts', { timeout: 10_000 }, async () => {
    await attempt(A, 'a wildcard-allowed domain on port 22 through CONNECT', async () => {
      const t = await connectTunnel('pkg.npmjs.org:22');
      assert.match(t.status, / 403 /);
      assert.equal(lastFor('pkg.npmjs.org')?.rule, 'default-deny');
    });

    await attempt(A, 'a wildcard-allowed domain on port 22 through SOCKS5 and plain HTTP', async () => {
      assert.equal((await socks('pkg.npmjs.org', 22)).code, 2);
      assert.match(await rawHttp('GET http://pkg.npmjs.org:22/ HTTP/1.1\r\nHost: pkg.npmjs.org:22\r\n\r\n'), /^HTTP\/1.1 403/);
    });

    await attempt(A, 'an allowed "host:port" on a neighbouring port', async () => {
      const t = await connectTunnel(`pkg.npmjs.org:${sinkPort + 1}`);
      assert.match(t.status, / 403 /);
      const ok = await connectTunnel(`pkg.npmjs.org:${sinkPort}`);
      assert.match(ok.status, / 200 /, 'control: the listed port itself opens');
      ok.socket.destroy();
    });
  });
});

// ---- 4. host names ------------------------------------------------------------------------------

describe('egress: host names are validated before any policy match', { timeout: 10_000 }, () => {
  const badNames = [
    ['NUL inside a wildcard match', 'evil.com\0.npmjs.org'],
    ['a control character', 'evil.com\x01.npmjs.org'],
    ['DEL', 'evil\x7f.npmjs.org'],
    ['a space', 'evil.com .npmjs.org'],
    ['percent-encoding', 'evil%2ecom.npmjs.org'],
    ['a label over 63', `${'a'.repeat(64)}.npmjs.org`],
    ['a name over 253', `${'a.'.repeat(122)}x.npmjs.org`],
    ['an empty label', 'evil..npmjs.org'],
    ['raw UTF-8 (not punycode)', Buffer.from('évil.npmjs.org', 'utf8').toString('latin1')],
    ['a hex IPv4 spelling', '0x7f.0.0.1'],
    ['a short IPv4 spelling', '127.1'],
  ] as const;

  it('attempts', { timeout: 10_000 }, async () => {
    await attempt(A, 'bad names through SOCKS5 (NUL, control, DEL, space, %, long labels/names, empty label, raw UTF-8, numeric)', async () => {
      for (const [what, name] of badNames) {
        const r = await socks(name, 443);
        assert.equal(r.code, 2, what);
        r.socket.destroy();
      }
      assert.equal(recordsFor((r) => r.via === 'socks' && r.rule === 'bad-host').length >= badNames.length - 2, true, 'audited as bad-host (repeats may be coalesced)');
      assert.ok(!audit.records.some((r) => r.allowed && r.host.includes('evil')), 'nothing with evil in it was allowed');
    });

    await attempt(A, 'bad names through CONNECT (long labels/names, %, empty label, raw UTF-8, numeric, NUL)', async () => {
      for (const [what, name] of badNames) {
        const t = await connectTunnel(`${name}:443`, `${name}:443`);
        assert.doesNotMatch(t.status, / 200 /, what);
        t.socket.destroy();
      }
    });

    await attempt(A, 'bad names through plain HTTP (in the URL and in the Host header)', async () => {
      const before = httpSeen.length;
      for (const [what, name] of badNames) {
        const out = await rawHttp(`GET http://${name}/ HTTP/1.1\r\nHost: ${name}\r\n\r\n`);
        assert.match(out.length === 0 ? 'HTTP/1.1 400 (closed)' : out, /^HTTP\/1.1 (400|403)/, what);
      }
      assert.equal(httpSeen.length, before);
    });

    await attempt(A, 'wildcard-suffix tricks: x.npmjs.org.evil.test, npmjs.org.evil.test, xnpmjs.org', async () => {
      for (const name of ['x.npmjs.org.evil.test', 'npmjs.org.evil.test', 'xnpmjs.org']) {
        assert.equal((await socks(name, 443)).code, 2, name);
        assert.match((await connectTunnel(`${name}:443`)).status, / 403 /, name);
      }
    });

    await attempt(A, 'user information in the URL (http://pkg.npmjs.org@evil.test/)', async () => {
      const out = await rawHttp(`GET http://pkg.npmjs.org@evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n`);
      assert.match(out, /^HTTP\/1.1 (400|403)/);
    });
  });

  it('control: a trailing dot and upper case name the same host', { timeout: 5000 }, async () => {
    const t = await connectTunnel(`PKG.NPMJS.ORG.:${sinkPort}`);
    assert.match(t.status, / 200 /);
    t.socket.destroy();
  });
});

// ---- 5. addresses -------------------------------------------------------------------------------

describe('egress: every resolved address is checked against the special ranges', { timeout: 15_000 }, () => {
  const ranges: [string, RegExp][] = [
    ['mapped', /IPv4-mapped.*loopback/],
    ['mapped-hex', /IPv4-mapped.*loopback/],
    ['mapped-meta', /metadata/],
    ['nat64-meta', /NAT64.*metadata/],
    ['nat64-loop', /NAT64.*loopback/],
    ['nat64-local', /local-use NAT64/],
    ['sixtofour', /6to4.*127.0.0.1/],
    ['sixtofour-meta', /6to4.*169.254.169.254/],
    ['teredo', /Teredo/],
    ['compat', /IPv4-compatible/],
    ['siit', /SIIT/],
    ['bench', /benchmarking/],
    ['azure', /Azure/],
    ['alibaba', /Alibaba/],
    ['ec2v6', /metadata/],
    ['meta', /metadata/],
    ['sitelocal', /site-local/],
    ['ula', /unique local/],
    ['cgnat', /carrier-grade NAT/],
    ['doc', /documentation/],
    ['mcast', /multicast/],
    ['bcast', /broadcast/],
    ['zero', /unspecified/],
    ['linklocal6', /link-local/],
  ];

  it('attempts', { timeout: 15_000 }, async () => {
    await attempt(A, 'allowed names resolving into each special range (through CONNECT)', async () => {
      for (const [name, reason] of ranges) {
        const t = await connectTunnel(`${name}.npmjs.org:443`);
        assert.match(t.status, / 403 /, name);
        assert.match(lastFor(`${name}.npmjs.org`)?.reason ?? '', reason, name);
      }
    });

    await attempt(A, 'allowed names resolving into each special range (through SOCKS5 and plain HTTP)', async () => {
      for (const [name] of ranges) {
        assert.equal((await socks(`${name}.npmjs.org`, 443)).code, 2, name);
        assert.match(await rawHttp(`GET http://${name}.npmjs.org/ HTTP/1.1\r\nHost: ${name}.npmjs.org\r\n\r\n`), /^HTTP\/1.1 403/, name);
      }
    });

    await attempt(A, 'IPv6 embeddings of 127.0.0.1 and 169.254.169.254 as SOCKS5 IPv6 addresses', async () => {
      for (const ip of ['::ffff:127.0.0.1', '::ffff:169.254.169.254', '64:ff9b::a9fe:a9fe', '2002:7f00:1::1', '::127.0.0.1']) {
        const r = await socks(ipBytes(ip)!, 80, 4);
        assert.equal(r.code, 2, ip);
      }
    });

    await attempt(A, 'the metadata address listed in IPv4-mapped form', async () => {
      const t = await connectTunnel('[::ffff:169.254.169.254]:80');
      assert.match(t.status, / 403 /);
      assert.match(lastFor('::ffff:a9fe:a9fe')?.reason ?? lastFor('::ffff:169.254.169.254')?.reason ?? '', /metadata/);
    });

    await attempt(A, 'a DNS answer mixing a public and a private address (IPv4 and IPv6)', async () => {
      for (const name of ['mixed.npmjs.org', 'mixed6.npmjs.org']) {
        assert.match((await connectTunnel(`${name}:443`)).status, / 403 /, name);
        assert.match(lastFor(name)?.reason ?? '', /private|loopback/);
      }
    });

    if (ownAddress) {
      await attempt(A, "a name resolving to one of this host's own interface addresses", async () => {
        assert.match((await connectTunnel('own.npmjs.org:443')).status, / 403 /);
        assert.match(lastFor('own.npmjs.org')?.reason ?? '', /this host/);
      });
    }

    await attempt(A, 'DNS rebinding: the name answers differently on a second lookup', async () => {
      resolverCalls = [];
      rebindCount = 0;
      const hello = await clientHello('rebind.test');
      const before = sinkBytes;
      const s = await socks('rebind.test', sinkPort);
      assert.equal(s.code, 0, 'the first answer (a listed address) is allowed');
      s.socket.write(hello);
      await waitFor('the hello at the checked address', () => sinkBytes - before === hello.length);
      s.socket.destroy();
      assert.deepEqual(resolverCalls, ['rebind.test'], 'one lookup per connection: the connection went to the checked answer, no second lookup');
      const again = await socks('rebind.test', sinkPort);
      assert.equal(again.code, 2, 'the next connection is judged on its own answer (10.0.0.1, private)');
      assert.match(lastFor('rebind.test')?.reason ?? '', /private/);
    });
  });
});

// ---- 6. every tunnel is audited -----------------------------------------------------------------

describe('egress: every tunnel leaves its audit record', { timeout: 10_000 }, () => {
  it('attempts', { timeout: 10_000 }, async () => {
    await attempt(A, 'the far end closes first (CONNECT)', async () => {
      const hello = await clientHello('closer.test');
      const t = await connectTunnel(`closer.test:${closerPort}`);
      const closed = readAll(t.socket);
      t.socket.write(hello);
      await closed;
      const rec = await waitFor('the tunnel record', () => recordsFor((r) => r.host === 'closer.test' && r.allowed && r.via === 'connect').at(-1));
      assert.equal(rec.outcome, 'server closed');
      assert.equal(rec.bytesUp, hello.length);
      assert.equal(typeof rec.durationMs, 'number');
    });

    await attempt(A, 'the far end resets the connection (SOCKS5)', async () => {
      const hello = await clientHello('resetter.test');
      const s = await socks('resetter.test', resetterPort);
      assert.equal(s.code, 0);
      const closed = readAll(s.socket);
      s.socket.write(hello);
      await closed;
      const rec = await waitFor('the tunnel record', () => recordsFor((r) => r.host === 'resetter.test' && r.allowed && r.via === 'socks').at(-1));
      assert.match(rec.outcome ?? '', /server/);
      assert.equal(rec.bytesUp, hello.length);
    });

    await attempt(A, 'the client vanishes in the middle of a TLS session', async () => {
      const t = await connectTunnel(`good.test:${tlsPort}`);
      const n = audit.records.length;
      const c = tls.connect({ socket: t.socket, servername: 'good.test', ca: cert.cert, checkServerIdentity: () => undefined });
      await new Promise((r) => c.once('secureConnect', r));
      t.socket.destroy();
      const rec = await waitFor('the tunnel record', () => since(n).find((r) => r.host === 'good.test' && r.allowed && r.port === tlsPort));
      assert.ok(rec.bytesUp > 0 && rec.bytesDown > 0, 'bytes both ways are counted');
    });
  });
});

// ---- 6b. the VM's sockets: where the guest's connections arrive on the host ------------------------

describe("egress: a VM's sockets on the host", { timeout: 30_000 }, () => {
  it('attempts', { timeout: 30_000 }, async () => {
    const dir = path.join(tmp, 'sockets');
    const paths = egressSocketPaths('vm-a', dir);
    const get = (socketPath: string, url: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = http.request({ socketPath, path: url, headers: { host: new URL(url).host } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(`${res.statusCode} ${body}`));
        });
        req.on('error', reject);
        req.end();
      });

    await attempt(A, "another local user reaches a VM's socket (folder 0700, sockets 0600)", async () => {
      const p2 = new EgressProxy({ task: 'vm-a', policy: new EgressPolicy({ allowed: [`good.test:${httpPort}`, `127.0.0.1:${httpPort}`], denied: ['denied.test'] }), audit: new MemoryAudit(), resolver: () => Promise.resolve(['127.0.0.1']) });
      // a file left where the socket goes (a crashed earlier run) is replaced, not an error
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(paths.http, 'stale');
      await p2.listenOn(paths);
      try {
        assert.equal(statSync(dir).mode & 0o777, 0o700);
        assert.equal(statSync(paths.http).mode & 0o777, 0o600);
        assert.equal(statSync(paths.socks).mode & 0o777, 0o600);
        // the same policy as every entry point: allowed goes through, denied is refused
        assert.match(await get(paths.http, `http://good.test:${httpPort}/x`), /^200 hello/);
        assert.match(await get(paths.http, 'http://denied.test/'), /^403 /);
      } finally {
        await p2.close();
      }
      assert.deepEqual(readdirSync(dir), [], 'close() removes the sockets');
    });

    await attempt(A, 'the socket folder was made by someone else or opened to others', () => {
      const open = path.join(tmp, 'open-sockets');
      mkdirSync(open, { mode: 0o755 });
      chmodSync(open, 0o755);
      assert.throws(() => ensureEgressSocketDir(open), /not a private folder/);
      const file = path.join(tmp, 'not-a-folder');
      writeFileSync(file, '');
      assert.throws(() => ensureEgressSocketDir(file));
    });

    await attempt(A, "root in a subverted guest opens more connections than a VM's sockets serve together (each one a host socat)", async () => {
      const flood = egressSocketPaths('vm-flood', dir);
      const p3 = new EgressProxy({ task: 'vm-flood', policy: new EgressPolicy({ allowed: [], denied: [] }), audit: new MemoryAudit() });
      await p3.listenOn(flood);
      const held: net.Socket[] = [];
      // a SOCKS5 greeting the proxy answers: once answered, the proxy has counted the connection
      const hold = async (file: string): Promise<void> => {
        const c = net.connect(file);
        c.on('error', () => undefined);
        held.push(c);
        await new Promise<void>((resolve, reject) => {
          c.once('data', () => resolve()).once('close', () => reject(new Error(`held connection ${held.length} closed before the greeting's answer`)));
          c.write(Buffer.from([5, 1, 0]));
        });
      };
      try {
        // the cap is per VM: all of it held on the SOCKS socket, one more on either socket is closed at once
        for (let i = 0; i < MAX_CONNECTIONS_PER_VM; i++) await hold(flood.socks);
        for (const file of [flood.http, flood.socks]) {
          const extra = net.connect(file);
          extra.on('error', () => undefined);
          const closedAt = await new Promise<string>((resolve) => {
            const timer = setTimeout(() => resolve('still open after 5 s'), 5_000);
            extra.once('close', () => (clearTimeout(timer), resolve('closed')));
          });
          assert.equal(closedAt, 'closed', `a connection past the VM's cap on ${path.basename(file)} is closed at once (its socat exits)`);
        }
        assert.ok(held.every((c) => !c.destroyed), 'the ones within the cap stay served');
      } finally {
        for (const c of held) c.destroy();
        await p3.close();
      }
    });

    await attempt(A, "a second window takes over a live VM socket (the same folder open twice: one VM id)", async () => {
      const shared = egressSocketPaths('vm-shared', dir);
      const first = new EgressProxy({ task: 'vm-shared', policy: new EgressPolicy({ allowed: [`good.test:${httpPort}`, `127.0.0.1:${httpPort}`], denied: [] }), audit: new MemoryAudit(), resolver: () => Promise.resolve(['127.0.0.1']) });
      const second = new EgressProxy({ task: 'vm-shared', policy: new EgressPolicy({ allowed: [], denied: [] }), audit: new MemoryAudit() });
      await first.listenOn(shared);
      try {
        await assert.rejects(second.listenOn(shared), /already serves this VM's egress/);
        assert.match(await get(shared.http, `http://good.test:${httpPort}/x`), /^200 hello/, "the first window's proxy still serves its VM");
      } finally {
        await second.close();
        await first.close();
      }
    });

    // where the folder goes: the user's runtime dir, else a temp dir socat can take, else /tmp
    assert.equal(egressSocketBase({ XDG_RUNTIME_DIR: '/run/user/1000' }, '/tmp'), '/run/user/1000');
    assert.equal(egressSocketBase({}, '/var/tmp'), '/var/tmp');
    assert.equal(egressSocketBase({ XDG_RUNTIME_DIR: '/run/a,b' }, "/home/x/it's tmp"), '/tmp');

    // not an attack: each VM has its own pair, and a 64-character id still fits a unix socket path (~107 bytes)
    const long = egressSocketPaths('x'.repeat(64));
    assert.notEqual(egressSocketPaths('vm-a').http, egressSocketPaths('vm-b').http);
    assert.ok(long.http.length < 100 && long.socks.length < 100, long.http);
    assert.equal(path.dirname(long.http), egressSocketDir());
  });
});

// ---- 7. the audit log stays bounded -------------------------------------------------------------

describe('egress: the audit log and the blocked list stay bounded under a flood', { timeout: 40_000 }, () => {
  const cap = 64 * 1024;
  /** A proxy with its own rotating log; `n` denied CONNECTs, 32 at a time, each on its own connection. */
  async function flood(name: string, n: number, target: (i: number) => string): Promise<{ proxy: EgressProxy; log: JsonlAudit; dir: string; decisions: EgressRecord[] }> {
    const dir = path.join(tmp, name);
    const log = new JsonlAudit(path.join(dir, 'egress.jsonl'), { maxBytes: cap, keep: 1 });
    const p = new EgressProxy({ task: name, policy: new EgressPolicy({ allowed: [], denied: ['denied.test'] }), audit: log });
    const decisions: EgressRecord[] = [];
    p.on('decision', (r) => decisions.push(r));
    const fp = await p.listen();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        const i = next++;
        const s = net.connect(fp.httpPort, '127.0.0.1');
        const done = readAll(s, 5000);
        s.write(`CONNECT ${target(i)} HTTP/1.1\r\n\r\n`);
        assert.match(await done, / 403 /);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    return { proxy: p, log, dir, decisions };
  }
  const readLog = (dir: string): EgressRecord[] =>
    readdirSync(dir)
      .sort()
      .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').trim().split('\n').filter(Boolean))
      .map((l) => JSON.parse(l) as EgressRecord);

  it('attempts', { timeout: 40_000 }, async () => {
    // One flood of 10,000: every other one the same destination (coalesced), the rest all distinct (rotation).
    const f = await flood('flood', 10_000, (i) => (i % 2 === 0 ? 'denied.test:443' : `n${i}.denied.test:443`));
    let closed = false;
    try {
      await attempt(A, '10,000 denials (5,000 distinct names): the log rotates and stays under its cap', () => {
        const files = readdirSync(f.dir);
        assert.ok(files.includes('egress.jsonl.1'), 'the log rotated');
        assert.ok(files.length <= 2, `at most the log and one old file: ${files.join(', ')}`);
        for (const file of files) assert.ok(statSync(path.join(f.dir, file)).size <= cap, `${file} stays under ${cap} bytes`);
      });

      await attempt(A, '10,000 denials: the panel keeps the latest 200 and the total', () => {
        assert.equal(f.proxy.blocked.recent.length, 200);
        assert.ok(f.proxy.blocked.recent.some((r) => r.host === 'n9999.denied.test'), 'the latest are the ones kept');
        assert.ok(f.proxy.blocked.total <= 10_000 && f.proxy.blocked.total > 5_000, 'the total counts coalesced denials once written');
      });

      await attempt(A, '5,000 identical denials in the flood: a handful of records whose counts add up to 5,000', async () => {
        await f.proxy.close();
        await f.log.close();
        closed = true;
        const same = f.decisions.filter((r) => r.host === 'denied.test');
        assert.ok(same.length <= 12, `${same.length} records for 5,000 identical denials`);
        assert.equal(
          same.reduce((n, r) => n + (r.count ?? 1), 0),
          5_000,
        );
        const summary = same.find((r) => r.count !== undefined)!;
        assert.ok(summary.lastTime && summary.lastTime >= summary.time, 'a count carries the time of the last denial');
        assert.equal(f.proxy.blocked.total, 10_000, 'after the final flush the total is exact');
        assert.ok(readLog(f.dir).length < 1000, 'the log holds far fewer lines than denials');
      });
    } finally {
      if (!closed) {
        await f.proxy.close();
        await f.log.close();
      }
    }
  });

  it('attempts: a coalescing window ends without the log closing', { timeout: 5000 }, async () => {
    await attempt(A, 'repeated denials within a short window come out as one count when it ends', async () => {
      const mem = new MemoryAudit();
      const p = new EgressProxy({ task: 'window', policy: new EgressPolicy({ allowed: [], denied: [] }), audit: mem, denialWindowMs: 1000 });
      const pp = await p.listen();
      try {
        for (let i = 0; i < 20; i++) {
          const s = net.connect(pp.socksPort, '127.0.0.1');
          const done = readAll(s);
          s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 9]), Buffer.from('deny.test'), Buffer.from([1, 187])]));
          await done;
        }
        const summary = await waitFor('the summary record', () => mem.records.find((r) => r.count !== undefined), 2000);
        assert.equal(mem.records.length, 2);
        assert.equal(summary.count, 19);
      } finally {
        await p.close();
      }
    });
  });
});
