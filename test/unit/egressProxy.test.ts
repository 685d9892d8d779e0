// The egress proxy on loopback against local servers: HTTP, CONNECT and SOCKS5, the checks that
// make each refuse, and the audit records. Names resolve through a test resolver.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { BlockedList, DenialCoalescer, JsonlAudit, MemoryAudit, type EgressRecord } from '../../extension/egress/audit';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy } from '../../extension/egress/proxy';
import { inspectFirstFlight, parseSni } from '../../extension/egress/sniff';

let upstream: http.Server;
let upPort: number;
let otherPort: number;
let other: net.Server;
let proxy: EgressProxy;
let ports: { httpPort: number; socksPort: number };
const audit = new MemoryAudit();

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

  it('denies unknown destinations without asking; a grant for the task ("Allow for this task") lets the retry through', async () => {
    const first = await viaHttpProxy(`http://asked.test:${upPort}/`);
    assert.equal(first.status, 403, 'no rule matches: denied');
    proxy.allow(`asked.test:${upPort}`);
    const again = await viaHttpProxy(`http://asked.test:${upPort}/`);
    assert.equal(again.status, 200, 'granted for this task');
    const never = await viaHttpProxy('http://never.test/');
    assert.equal(never.status, 403, 'a grant covers only what it names');
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

/** A ClientHello built by hand: extensions as [type, data] pairs, the handshake message cut into records of `recordSize`. */
function hello(exts: [number, Buffer][], recordSize = 16384): Buffer {
  const extBytes = Buffer.concat(exts.map(([t, d]) => Buffer.concat([u16(t), u16(d.length), d])));
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 7), Buffer.from([0]), u16(2), u16(0x1301), Buffer.from([1, 0]), u16(extBytes.length), extBytes]);
  const msg = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 255, body.length & 255]), body]);
  const out: Buffer[] = [];
  for (let i = 0; i < msg.length; i += recordSize) {
    const part = msg.subarray(i, i + recordSize);
    out.push(Buffer.from([0x16, 3, 1]), u16(part.length), part);
  }
  return Buffer.concat(out);
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function patch16(b: Buffer, at: number, v: number): Buffer {
  const c = Buffer.from(b);
  c.writeUInt16BE(v, at);
  return c;
}
/** The same one-record hello with `more` appended inside its record. */
function extend(h: Buffer, more: Buffer): Buffer {
  const c = Buffer.concat([h, more]);
  c.writeUInt16BE(h.readUInt16BE(3) + more.length, 3);
  return c;
}
function sniExt(...names: string[]): [number, Buffer] {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), u16(Buffer.byteLength(n, 'latin1')), Buffer.from(n, 'latin1')])));
  return [0, Buffer.concat([u16(list.length), list])];
}

describe('first-flight inspection (inspectFirstFlight)', () => {
  it('reassembles a ClientHello from many records and reports its SNI only when complete', () => {
    const h = hello([[10, Buffer.from([0, 2, 0, 29])], sniExt('registry.npmjs.org')], 9);
    assert.ok(h.length > 100);
    for (const cut of [1, 4, 5, 6, 14, 50, h.length - 1]) assert.deepEqual(inspectFirstFlight(h.subarray(0, cut)), { kind: 'more' }, `cut at ${cut}`);
    assert.deepEqual(inspectFirstFlight(h), { kind: 'tls', sni: 'registry.npmjs.org' });
    assert.deepEqual(inspectFirstFlight(hello([sniExt('A.Example.')])), { kind: 'tls', sni: 'a.example' });
    assert.deepEqual(inspectFirstFlight(hello([[10, Buffer.from([0, 2, 0, 29])]])), { kind: 'tls', sni: undefined });
  });

  const refusals: [string, Buffer, RegExp][] = [
    ['two names in the SNI', hello([sniExt('a.example', 'b.example')]), /more than one/],
    ['the SNI extension twice', hello([sniExt('a.example'), sniExt('b.example')]), /repeats extension/],
    ['Encrypted ClientHello', hello([sniExt('public.example'), [0xfe0d, Buffer.alloc(40, 1)]]), /Encrypted ClientHello/],
    ['an IP address as SNI', hello([sniExt('127.0.0.1')]), /IP address/],
    ['a NUL in the SNI', hello([sniExt('evil.com\0.npmjs.org')]), /control/],
    ['an empty SNI list', hello([[0, u16(0)]]), /empty/],
    ['an extension list longer than the message', patch16(hello([sniExt('a.example')]), 50, 500), /do not fill/],
    ['an extension longer than its list', patch16(hello([sniExt('a.example')]), 54, 500), /truncated or malformed/],
    ['an application-data record first', Buffer.from([0x17, 3, 3, 0, 1, 0]), /neither.*0x17/],
    ['an application-data record inside the ClientHello', Buffer.concat([hello([sniExt('a.example')], 20).subarray(0, 25), Buffer.from([0x17, 3, 3, 0, 1, 0])]), /other than a handshake/],
    ['more handshake data in the records that carry the ClientHello', extend(hello([sniExt('a.example')]), Buffer.from([1, 0, 0, 0])), /after the ClientHello/],
    ['a ServerHello instead of a ClientHello', Buffer.from([0x16, 3, 3, 0, 4, 2, 0, 0, 0]), /not a ClientHello/],
    ['a record of length 0', Buffer.from([0x16, 3, 1, 0, 0]), /invalid length/],
    ['an SSLv2-style hello', Buffer.from([0x80, 0x2e, 1, 3, 1]), /neither/],
    ['HTTP/2 prior knowledge', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), /HTTP\/2/],
    ['no Host header', Buffer.from('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n'), /no Host/],
    ['two Host headers', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), /more than one Host/],
    ['an obs-folded header', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n x: y\r\n\r\n'), /malformed header/],
    ['a bare LF in a header', Buffer.from('GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n'), /malformed header/],
    ['a bad request line', Buffer.from('GET /  HTTP/1.1\r\n'), /neither/],
    ['an SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), /neither/],
  ];
  for (const [what, bytes, reason] of refusals) {
    it(`refuses ${what}`, () => {
      const r = inspectFirstFlight(bytes);
      assert.equal(r.kind, 'refuse', JSON.stringify(r));
      assert.match(r.kind === 'refuse' ? r.reason : '', reason);
    });
  }

  it('refuses a ClientHello that claims to be larger than the limit', () => {
    const big = Buffer.from([0x16, 3, 1, 0, 4, 1, 0x10, 0, 0]);
    assert.match((inspectFirstFlight(big) as { reason: string }).reason, /too large/);
  });

  it('reads an HTTP/1 head, waiting for its end', () => {
    assert.deepEqual(inspectFirstFlight(Buffer.from('GET /x HTTP/1.1\r\nHost: a.example:8080\r\n')), { kind: 'more' });
    assert.deepEqual(inspectFirstFlight(Buffer.from('GET /x HTTP/1.1\r\nHost: a.example:8080\r\n\r\nbody')), { kind: 'http', method: 'GET', target: '/x', host: 'a.example:8080' });
  });
});

describe('audit log bounds', () => {
  const rec = (i: number, allowed = false): EgressRecord => ({ time: new Date(1_700_000_000_000 + i).toISOString(), task: 't', via: 'http', host: `h${i % 7}.test`, port: 443, allowed, rule: allowed ? 'allowed:x' : 'default-deny', reason: 'not listed', bytesUp: 0, bytesDown: 0 });

  it('rotates the JSONL file at its cap and keeps the given number of old files', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cowork-audit-'));
    try {
      const log = new JsonlAudit(path.join(dir, 'a.jsonl'), { maxBytes: 4096, keep: 2 });
      for (let i = 0; i < 2000; i++) log.write(rec(i));
      void log.close();
      const files = readdirSync(dir).sort();
      assert.deepEqual(files, ['a.jsonl', 'a.jsonl.1', 'a.jsonl.2']);
      for (const f of files) assert.ok(statSync(path.join(dir, f)).size <= 4096, f);
      const last = readFileSync(path.join(dir, 'a.jsonl'), 'utf8').trim().split('\n').at(-1)!;
      assert.equal((JSON.parse(last) as EgressRecord).host, `h${1999 % 7}.test`, 'the newest record is in the current file');
      const again = new JsonlAudit(path.join(dir, 'a.jsonl'), { maxBytes: 4096, keep: 2 });
      again.write(rec(1));
      void again.close();
      assert.ok(statSync(path.join(dir, 'a.jsonl')).size <= 4096, 'a reopened log continues counting from its size');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('coalesces identical denials in a window into one count, passes allowed records at once', () => {
    let now = 0;
    const out: EgressRecord[] = [];
    const c = new DenialCoalescer((r) => out.push(r), 1000, 3, () => now);
    for (let i = 0; i < 50; i++) c.push({ ...rec(0), time: `t${i}` });
    c.push(rec(1, true));
    assert.deepEqual(
      out.map((r) => [r.time, r.allowed, r.count]),
      [
        ['t0', false, undefined],
        [rec(1).time, true, undefined],
      ],
    );
    now = 1500;
    c.push(rec(2));
    assert.deepEqual(out.slice(2).map((r) => [r.time, r.count, r.lastTime]), [['t1', 49, 't49'], [rec(2).time, undefined, undefined]]);
    // More distinct keys than it holds: the oldest leave (with their counts), memory stays bounded.
    for (let k = 3; k < 10; k++) for (let i = 0; i < 3; i++) c.push(rec(k));
    c.flush();
    const denials = out.filter((r) => !r.allowed);
    assert.equal(denials.reduce((n, r) => n + (r.count ?? 1), 0), 50 + 1 + 7 * 3);
  });

  it('keeps the latest 200 blocked requests and the total', () => {
    const b = new BlockedList();
    for (let i = 0; i < 1000; i++) b.add(rec(i));
    b.add({ ...rec(5), count: 41 });
    b.add(rec(3, true));
    assert.equal(b.recent.length, 200);
    assert.equal(b.total, 1041);
    assert.equal(b.recent.at(-1)!.count, 41);
  });
});
