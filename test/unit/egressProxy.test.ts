// The egress proxy on loopback against local servers: HTTP, CONNECT and SOCKS5, the checks that
// make each refuse, and the audit records. Names resolve through a test resolver.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { MemoryAudit } from '../../extension/egress/audit';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy, type AskRequest } from '../../extension/egress/proxy';
import { parseSni } from '../../extension/egress/sniff';

let upstream: http.Server;
let upPort: number;
let otherPort: number;
let other: net.Server;
let proxy: EgressProxy;
let ports: { httpPort: number; socksPort: number };
const audit = new MemoryAudit();
const asked: AskRequest[] = [];

before(async () => {
  upstream = http.createServer((req, res) => res.end(`hello ${req.headers.host} ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upPort = (upstream.address() as net.AddressInfo).port;
  other = net.createServer((s) => s.end('should never be reached'));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  otherPort = (other.address() as net.AddressInfo).port;
  const names: Record<string, string> = { 'good.test': '127.0.0.1', 'sneaky.test': '127.0.0.1', 'asked.test': '127.0.0.1' };
  proxy = new EgressProxy({
    task: 't1',
    // A name without a port covers 80/443 only, so the local servers' ports are listed with the names.
    policy: new EgressPolicy({ allowed: ['good.test', `good.test:${upPort}`, 'sneaky.test', `sneaky.test:${otherPort}`, `127.0.0.1:${upPort}`, 'api.anthropic.com'], denied: ['blocked.test'] }),
    audit,
    resolver: (h) => (names[h] ? Promise.resolve([names[h]]) : Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' }))),
    ask: (req) => {
      asked.push(req);
      return Promise.resolve(req.host === 'asked.test' ? 'allow-task' : 'deny');
    },
  });
  ports = await proxy.listen();
});
after(async () => {
  await proxy.close();
  upstream.close();
  other.close();
});

function viaHttpProxy(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    // As curl does through a proxy: the Host header names the target.
    const req = http.request({ host: '127.0.0.1', port: ports.httpPort, path: url, headers: { host: new URL(url).host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
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
  });
}

function readAll(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('close', () => resolve(out));
  });
}

const lastRecord = () => audit.records[audit.records.length - 1]!;

describe('egress proxy', () => {
  it('forwards an allowed plain HTTP request and records it with byte counts', async () => {
    const r = await viaHttpProxy(`http://good.test:${upPort}/path?q=1`);
    assert.equal(r.status, 200);
    assert.equal(r.body, `hello good.test:${upPort} /path?q=1`);
    await new Promise((res) => setTimeout(res, 50));
    const rec = audit.records.find((x) => x.host === 'good.test' && x.via === 'http')!;
    assert.equal(rec.allowed, true);
    assert.equal(rec.method, 'GET');
    assert.equal(rec.address, '127.0.0.1');
    assert.ok(rec.bytesDown > 10);
  });

  it('refuses a denied domain, the model API and unknown names with 403 and a reason', async () => {
    for (const [host, rule] of [['blocked.test', /^denied:/], ['api.anthropic.com', /^model-api:/], ['unknown.test', /default-deny/]] as const) {
      const r = await viaHttpProxy(`http://${host}/`);
      assert.equal(r.status, 403, host);
      assert.match(String(r.headers['x-cowork-denied']), rule);
      assert.match(r.body, /Cowork egress proxy/);
      assert.equal(lastRecord().allowed, false);
      assert.equal(lastRecord().host, host);
    }
  });

  it('refuses an allowed name that resolves to a loopback port that is not listed', async () => {
    const r = await viaHttpProxy(`http://sneaky.test:${otherPort}/`);
    assert.equal(r.status, 403);
    assert.match(r.body, /loopback/);
  });

  it('refuses a Host header that does not match the request', async () => {
    const r = await viaHttpProxy(`http://good.test:${upPort}/`, { host: 'blocked.test' });
    assert.equal(r.status, 403);
    assert.equal(lastRecord().rule, 'host-mismatch');
  });

  it('tunnels CONNECT to an allowed host and refuses a mismatched Host inside the tunnel', async () => {
    const ok = await connectTunnel(`good.test:${upPort}`);
    assert.match(ok.status, / 200 /);
    ok.socket.write(`GET /t HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n`);
    assert.match(await readAll(ok.socket), /hello good.test \/t/);

    const fronted = await connectTunnel(`good.test:${upPort}`);
    fronted.socket.write(`GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n`);
    assert.equal(await readAll(fronted.socket), '');
    assert.equal(lastRecord().rule, 'host-mismatch');

    const mismatch = await connectTunnel(`good.test:${upPort}`, 'blocked.test');
    assert.match(mismatch.status, / 403 /);
    const denied = await connectTunnel('blocked.test:443');
    assert.match(denied.status, / 403 /);
  });

  it('refuses a TLS tunnel whose SNI names another host', async () => {
    const t = await connectTunnel(`good.test:${upPort}`);
    const closed = readAll(t.socket);
    const client = tls.connect({ socket: t.socket, servername: 'blocked.test', rejectUnauthorized: false });
    client.on('error', () => undefined);
    await closed;
    assert.equal(lastRecord().rule, 'host-mismatch');
    assert.match(lastRecord().reason ?? '', /SNI "blocked.test"/);
  });

  it('speaks SOCKS5 CONNECT with the same policy', async () => {
    const socks = (host: string, port: number): Promise<{ code: number; socket: net.Socket }> =>
      new Promise((resolve, reject) => {
        const s = net.connect(ports.socksPort, '127.0.0.1', () => s.write(Buffer.from([5, 1, 0])));
        let stage = 0;
        let buf = Buffer.alloc(0);
        s.on('data', (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          if (stage === 0 && buf.length >= 2) {
            buf = buf.subarray(2);
            stage = 1;
            const name = Buffer.from(host);
            const req = Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 255])]);
            s.write(req);
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
    const ok = await socks('good.test', upPort);
    assert.equal(ok.code, 0);
    ok.socket.write(`GET /s HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n`);
    assert.match(await readAll(ok.socket), /hello good.test \/s/);
    assert.equal((await socks('blocked.test', 443)).code, 2);
    assert.equal((await socks('api.anthropic.com', 443)).code, 2);
    assert.equal(lastRecord().via, 'socks');
  });

  it('asks about unknown destinations and remembers a grant for the task', async () => {
    asked.length = 0;
    const first = await viaHttpProxy(`http://asked.test:${upPort}/`);
    assert.equal(first.status, 200);
    assert.equal(asked.length, 1);
    assert.equal(asked[0]!.host, 'asked.test');
    const again = await viaHttpProxy(`http://asked.test:${upPort}/`);
    assert.equal(again.status, 200);
    assert.equal(asked.length, 1, 'not asked twice: the grant was remembered');
    const never = await viaHttpProxy('http://never.test/');
    assert.equal(never.status, 403, 'the person said no');
    assert.equal(asked.at(-1)?.host, 'never.test');
  });
});

describe('TLS SNI parsing', () => {
  it('reads the server name from a real ClientHello', async () => {
    const srv = net.createServer();
    const first = new Promise<Buffer>((resolve) => srv.on('connection', (s) => s.once('data', (c: Buffer) => (resolve(c), s.destroy()))));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, servername: 'registry.npmjs.org' });
    c.on('error', () => undefined);
    assert.equal(parseSni(await first), 'registry.npmjs.org');
    srv.close();
  });
});
