// The helper's promises about processes and bad input: no VM outlives it, whatever way it dies,
// and each kind of bad request gets an error that says what is wrong.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, readFile, writeFile, readdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCacheDir } from '../../vm-host/image/cacheDir';
import { isAlive, startHelper, tempDir, vmResources, waitFor } from './harness';

describe('vm-host lifecycle', () => {
  let ws: Awaited<ReturnType<typeof tempDir>>;
  let sessions: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    ws = await tempDir('ws');
    sessions = await tempDir('sessions');
  });
  after(async () => {
    await ws.dispose();
    await sessions.dispose();
  });

  const start = (client: ReturnType<typeof startHelper>, vmId: string) =>
    client.request('vm.start', { vmId, workspace: ws.dir, sessionDisk: path.join(sessions.dir, `${vmId}.qcow2`), accelerator: 'auto', ...vmResources() });

  it('SIGKILL of the helper leaves no QEMU behind', async () => {
    const client = startHelper();
    await start(client, 'killed');
    const { vms } = await client.request('vm.list', {});
    const qemuPid = vms[0]?.pid;
    assert.ok(qemuPid && isAlive(qemuPid), 'QEMU runs');
    process.kill(client.pid!, 'SIGKILL');
    await client.exited;
    assert.ok(await waitFor(() => !isAlive(qemuPid), 10_000), `QEMU ${qemuPid} must die with the helper`);
    const leftovers = (await readdir(os.tmpdir())).filter((n) => n.startsWith('cowork-vm-killed-'));
    assert.deepEqual(leftovers, [], 'the runtime dir (keys) is removed too');
  });

  it('closing the helper stdin shuts the VM down within a bounded time', async () => {
    const client = startHelper();
    await start(client, 'eof');
    const { vms } = await client.request('vm.list', {});
    const qemuPid = vms[0]!.pid!;
    assert.equal(vms[0]!.state, 'ready');
    assert.ok((vms[0]!.rssBytes ?? 0) > 50 * 1024 * 1024, 'the VM reports its memory use');
    const t0 = Date.now();
    await client.dispose(15_000);
    const elapsed = Date.now() - t0;
    assert.ok(!isAlive(qemuPid), 'QEMU is gone once the helper has exited');
    assert.ok(elapsed < 10_000, `shutdown took ${elapsed} ms`);
  });

  it('refuses bad input with errors that say what to do', async () => {
    const client = startHelper();
    try {
      const base = { vmId: 'bad', workspace: ws.dir, sessionDisk: path.join(sessions.dir, 'bad.qcow2'), accelerator: 'auto' as const, ...vmResources() };
      await assert.rejects(client.request('vm.start', { ...base, workspace: path.join(ws.dir, 'missing') }), (e: Error & { helperCode?: string }) => e.helperCode === 'workspace-missing' && /does not exist/.test(e.message));
      await assert.rejects(
        client.request('vm.start', { ...base, accelerator: 'warp-drive' as never }),
        (e: Error & { helperCode?: string }) => e.helperCode === 'bad-request' && /accelerator/.test(e.message),
      );
      const tooMuch = Math.ceil(os.totalmem() / 1048576) * 2;
      await assert.rejects(client.request('vm.start', { ...base, memoryMiB: tooMuch }), (e: Error & { helperCode?: string }) => e.helperCode === 'bad-config' && /memoryMiB/.test(e.message));
      const foreign = process.platform === 'darwin' ? 'whpx' : 'hvf';
      await assert.rejects(client.request('vm.start', { ...base, accelerator: foreign }), (e: Error & { helperCode?: string }) => e.helperCode === 'accelerator-unavailable' && /auto/.test(e.message));
      await assert.rejects(client.request('vm.stop' as never, { nope: 1 } as never), /Invalid vm.stop parameters/);
    } finally {
      await client.dispose();
    }
  });

  it('detects a corrupt cached image, rebuilds what it can, and names the missing tool otherwise', async () => {
    const cache = await tempDir('cache');
    try {
      await cp(path.join(defaultCacheDir(), 'images'), path.join(cache.dir, 'images'), { recursive: true });
      const probe = startHelper({ COWORK_CACHE_DIR: cache.dir });
      const { key } = await probe.request('image.ensure', {}).finally(() => probe.dispose());
      const [baseKey, bootKey] = key.split('-');
      const images = await readdir(path.join(cache.dir, 'images'));
      const boot = images.find((n) => n.endsWith(`-boot-${bootKey}`))!;
      const base = images.find((n) => n.endsWith(`-base-${baseKey}`))!;
      const initrd = path.join(cache.dir, 'images', boot, 'initrd.img');
      const good = await readFile(initrd);
      const bad = Buffer.from(good);
      bad.fill(0x42, 1000, 5000);
      await writeFile(initrd, bad);

      const client = startHelper({ COWORK_CACHE_DIR: cache.dir });
      try {
        const r = await client.request('image.ensure', {});
        assert.equal(r.built, true, 'the corrupt initramfs is rebuilt');
        const rebuilt = await readFile(path.join(cache.dir, 'images', boot, 'initrd.img'));
        assert.ok(!rebuilt.equals(bad), 'the corrupt bytes are gone');
      } finally {
        await client.dispose();
      }

      // The root filesystem cannot be rebuilt without mmdebstrap: the error names it and its package.
      const rootfs = path.join(cache.dir, 'images', base, 'rootfs.squashfs');
      execFileSync('truncate', ['-s', '1M', rootfs]);
      const noTools = startHelper({ COWORK_CACHE_DIR: cache.dir, PATH: '/nonexistent' });
      try {
        await assert.rejects(noTools.request('image.ensure', {}), (e: Error & { helperCode?: string }) => {
          assert.equal(e.helperCode, 'missing-tool');
          assert.match(e.message, /mmdebstrap/);
          assert.match(e.message, /apt-get install .*squashfs-tools-ng/);
          return true;
        });
      } finally {
        await noTools.dispose();
      }
    } finally {
      await cache.dispose();
    }
  });
});
