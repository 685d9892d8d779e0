// The walking skeleton against a real guest: boot, commands over SSH, the read-only workspace
// share with its overlay, and a NIC that reaches nothing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GuestVm } from '../../extension/guest/guestVm';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { bootGuest, startHelper, tempDir } from './harness';

describe('a real guest VM', () => {
  let client: VmHostClient;
  let vm: GuestVm;
  let ws: Awaited<ReturnType<typeof tempDir>>;
  let sessions: Awaited<ReturnType<typeof tempDir>>;
  const original = Buffer.from('host original\n');

  before(async () => {
    ws = await tempDir('ws');
    sessions = await tempDir('sessions');
    await writeFile(path.join(ws.dir, 'readme.txt'), original);
    client = startHelper();
    vm = await bootGuest(client, ws.dir, sessions.dir, 'guest-test');
  });

  after(async () => {
    await vm?.stop().catch(() => undefined);
    await client?.dispose();
    await ws?.dispose();
    await sessions?.dispose();
  });

  it('runs a command and returns its output and exit code', async () => {
    const r = await vm.sh('echo out; echo err >&2; exit 3');
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.code, 3);
    assert.equal(r.signal, null);
    assert.equal(r.timedOut, false);
  });

  it('reports a command killed by a signal', async () => {
    const r = await vm.sh('kill -TERM $$; sleep 5');
    assert.equal(r.code, null);
    assert.equal(r.signal, 'TERM');
  });

  it('kills a command on abort within a second and leaves no process behind', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const running = vm.sh('echo started; sleep 300 & wait', { signal: ac.signal, onStdout: () => ac.abort() });
    const r = await running;
    const elapsed = Date.now() - t0;
    assert.equal(r.aborted, true);
    assert.equal(r.signal, 'KILL');
    assert.ok(elapsed < 5_000, `abort took ${elapsed} ms`);
    const ps = await vm.sh("pgrep -f '^sleep 300$' || true");
    assert.equal(ps.stdout.toString().trim(), '', 'the sleep child must be gone');
  });

  it('times a command out', async () => {
    const r = await vm.sh('sleep 30', { timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'KILL');
  });

  it('reports a missing program as exit 127', async () => {
    const r = await vm.exec(['/no/such/program']);
    assert.equal(r.code, 127);
    assert.match(r.stderr.toString(), /no\/such\/program/);
  });

  it('streams large output and keeps it byte-exact', async () => {
    const r = await vm.sh('head -c 3000000 /dev/urandom | tee /tmp/blob | sha256sum | cut -d" " -f1; cat /tmp/blob >&2');
    const want = r.stdout.toString().trim();
    assert.equal(createHash('sha256').update(r.stderr).digest('hex'), want);
    assert.equal(r.stderr.length, 3_000_000);
  });

  it('shows the host workspace read-only at /workspace and keeps writes in the overlay', async () => {
    const read = await vm.sh('cat /workspace/readme.txt');
    assert.equal(read.stdout.toString(), original.toString());
    const write = await vm.sh('echo agent version > /workspace/readme.txt && echo new > /workspace/added.txt && cat /workspace/readme.txt');
    assert.equal(write.code, 0, write.stderr.toString());
    assert.equal(write.stdout.toString(), 'agent version\n');
    assert.deepEqual(await readFile(path.join(ws.dir, 'readme.txt')), original, 'the host file must be byte-for-byte unchanged');
    await assert.rejects(readFile(path.join(ws.dir, 'added.txt')), /ENOENT/);
    const upper = await vm.sh('cat /session/upper/readme.txt /session/upper/added.txt');
    assert.equal(upper.stdout.toString(), 'agent version\nnew\n');
    const direct = await vm.sh('echo x > /mnt/host/readme.txt');
    assert.notEqual(direct.code, 0, 'the share itself must be read-only');
  });

  it('reads and writes files over SFTP', async () => {
    await vm.fs.writeFile('/workspace/sftp.bin', Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(await vm.fs.readFile('/workspace/sftp.bin'), Buffer.from([0, 1, 2, 255]));
    await assert.rejects(vm.fs.readFile('/workspace/none'), /no such file/);
  });

  it('cannot open an outbound TCP connection to the host or anywhere else', async () => {
    let accepted = 0;
    const server = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const probe = (host: string, p: number): string =>
        `python3 -c "import socket,sys\ntry:\n socket.create_connection(('${host}',${p}),timeout=3); print('CONNECTED')\nexcept Exception as e: print('REFUSED', type(e).__name__)"`;
      for (const [host, p] of [['10.0.2.2', port], ['10.0.2.2', 22], ['1.1.1.1', 80], ['10.0.2.3', 53]] as const) {
        const r = await vm.sh(probe(host, p));
        assert.match(r.stdout.toString(), /REFUSED/, `${host}:${p} must be unreachable, got ${r.stdout.toString()}`);
      }
      const dns = await vm.sh(`python3 -c "import socket\ntry:\n socket.getaddrinfo('deb.debian.org',80); print('RESOLVED')\nexcept Exception as e: print('NO-DNS')"`);
      assert.match(dns.stdout.toString(), /NO-DNS/);
      assert.equal(accepted, 0, 'the host server must never see a connection from the guest');
    } finally {
      server.close();
    }
  });
});
