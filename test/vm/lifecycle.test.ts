// The helper's promises about processes and bad input: no VM outlives it, whatever way it dies
// (mid-boot, mid-command, stdin closed); a VM that dies on its own (kill -9, guest panic) is
// unregistered and reported, and its id starts again on the same session disk; two starts of one
// id cannot both go ahead; each kind of bad request gets an error that says what is wrong.
// Run under the lock: flock /tmp/cowork-vm.lock node --import tsx --test test/vm/lifecycle.test.ts
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, readFile, writeFile, readdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCacheDir } from '../../vm-host/image/cacheDir';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { GuestVm } from '../../extension/guest/guestVm';
import type { VmHostEvent } from '../../extension/protocol/vmHost';
import { isAlive, startHelper, tempDir, testAccelerator, vmResources, waitFor } from './harness';

const BOOT_MS = 300_000;

/** Resolves with the first event that matches, or fails naming what it waited for. */
function nextEvent<T extends VmHostEvent>(client: VmHostClient, what: string, match: (ev: VmHostEvent) => ev is T, timeoutMs: number): Promise<T>;
function nextEvent(client: VmHostClient, what: string, match: (ev: VmHostEvent) => boolean, timeoutMs: number): Promise<VmHostEvent>;
function nextEvent(client: VmHostClient, what: string, match: (ev: VmHostEvent) => boolean, timeoutMs: number): Promise<VmHostEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const sub = client.onEvent((ev) => {
      if (!match(ev)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(ev);
    });
  });
}

async function mustDie(pid: number, what: string, timeoutMs = 10_000): Promise<void> {
  assert.ok(await waitFor(() => !isAlive(pid), timeoutMs), `${what} (pid ${pid}) is still alive ${timeoutMs} ms later`);
}

describe('vm-host lifecycle', { timeout: 1_800_000 }, () => {
  let ws: Awaited<ReturnType<typeof tempDir>>;
  let sessions: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    ws = await tempDir('ws');
    sessions = await tempDir('sessions');
  }, { timeout: 30_000 });
  after(async () => {
    await ws.dispose();
    await sessions.dispose();
  });

  const start = (client: ReturnType<typeof startHelper>, vmId: string) =>
    client.request('vm.start', { vmId, workspace: ws.dir, sessionDisk: path.join(sessions.dir, `${vmId}.qcow2`), accelerator: testAccelerator(), ...vmResources() });

  it('SIGKILL of the helper mid-command leaves no QEMU behind', { timeout: BOOT_MS + 60_000 }, async () => {
    const client = startHelper();
    const info = await start(client, 'killed');
    const guest = await GuestVm.attach(client, info);
    const { vms } = await client.request('vm.list', {});
    const qemuPid = vms[0]?.pid;
    assert.ok(qemuPid && isAlive(qemuPid), 'QEMU runs');
    // a command is running in the guest when the helper dies
    const running = guest.sh('echo started; sleep 300', { timeoutMs: 400_000 }).catch((err: unknown) => err);
    assert.equal((await guest.sh('pgrep -x sleep >/dev/null && echo yes', { timeoutMs: 30_000 })).stdout.toString().trim(), 'yes', 'the command runs');
    process.kill(client.pid!, 'SIGKILL');
    await client.exited;
    await mustDie(qemuPid, 'QEMU after the helper was SIGKILLed mid-command');
    guest.connection.close();
    await running;
    const leftovers = (await readdir(os.tmpdir())).filter((n) => n.startsWith('cowork-vm-killed-'));
    assert.deepEqual(leftovers, [], 'the runtime dir (keys) is removed too');
  });

  it('SIGKILL of the helper mid-boot leaves no QEMU behind', { timeout: BOOT_MS + 60_000 }, async () => {
    const client = startHelper();
    const booting = nextEvent(client, 'the first boot step of midboot', (ev) => ev.event === 'vm.progress' && ev.vmId === 'midboot', BOOT_MS);
    const started = start(client, 'midboot').catch((err: unknown) => err);
    const step = await booting;
    assert.equal(step.event === 'vm.progress' && step.step, 'kernel', 'the first step reported is the kernel');
    const { vms } = await client.request('vm.list', {});
    const vm = vms.find((v) => v.vmId === 'midboot');
    assert.equal(vm?.state, 'booting');
    const qemuPid = vm.pid!;
    assert.ok(isAlive(qemuPid));
    process.kill(client.pid!, 'SIGKILL');
    await client.exited;
    await mustDie(qemuPid, 'QEMU after the helper was SIGKILLed mid-boot');
    assert.ok((await started) instanceof Error, 'the start fails');
    const leftovers = (await readdir(os.tmpdir())).filter((n) => n.startsWith('cowork-vm-midboot-'));
    assert.deepEqual(leftovers, [], 'the runtime dir (keys) is removed too');
  });

  it('a VM that dies while ready (kill -9, guest panic) is unregistered and reported, and its id starts again on the same session disk; concurrent starts of one id cannot both go ahead', { timeout: 3 * BOOT_MS + 120_000 }, async () => {
    const client = startHelper();
    const vmId = 'phoenix';
    try {
      // two starts of one id: the second is refused at once, not after a boot
      const first = start(client, vmId);
      const t0 = Date.now();
      await assert.rejects(start(client, vmId), (e: Error & { helperCode?: string }) => e.helperCode === 'vm-exists' && /phoenix is already (starting|running)/.test(e.message));
      assert.ok(Date.now() - t0 < 5_000, `the second start was refused after ${Date.now() - t0} ms`);
      let guest = await GuestVm.attach(client, await first);
      await guest.sh('echo kept > /workspace/kept.txt && sync', { timeoutMs: 60_000 });

      // 1. QEMU killed
      let pid = (await client.request('vm.list', {})).vms.find((v) => v.vmId === vmId)!.pid!;
      let failed = nextEvent(client, `vm.state failed of ${vmId} after kill -9`, (ev) => ev.event === 'vm.state' && ev.vmId === vmId && ev.state === 'failed', 30_000);
      process.kill(pid, 'SIGKILL');
      let ev = await failed;
      assert.match(ev.event === 'vm.state' ? (ev.detail ?? '') : '', /QEMU was killed by SIGKILL/);
      guest.connection.close();
      assert.ok(await waitFor(async () => !(await client.request('vm.list', {})).vms.some((v) => v.vmId === vmId), 10_000), 'the dead VM is unregistered');

      // restart: same id, same session disk, the change is still there
      guest = await GuestVm.attach(client, await start(client, vmId));
      assert.equal((await guest.sh('cat /workspace/kept.txt', { timeoutMs: 30_000 })).stdout.toString(), 'kept\n', 'the session disk kept the change');

      // 2. guest kernel panic
      pid = (await client.request('vm.list', {})).vms.find((v) => v.vmId === vmId)!.pid!;
      failed = nextEvent(client, `vm.state failed of ${vmId} after a guest panic`, (e) => e.event === 'vm.state' && e.vmId === vmId && e.state === 'failed', 60_000);
      void guest.sh('echo c > /proc/sysrq-trigger', { timeoutMs: 10_000 }).catch(() => undefined);
      ev = await failed;
      assert.match(ev.event === 'vm.state' ? (ev.detail ?? '') : '', /guest kernel panicked/);
      guest.connection.close();
      await mustDie(pid, 'QEMU of the panicked guest');
      assert.ok(await waitFor(async () => !(await client.request('vm.list', {})).vms.some((v) => v.vmId === vmId), 10_000), 'the panicked VM is unregistered');
      guest = await GuestVm.attach(client, await start(client, vmId));
      assert.equal((await guest.sh('cat /workspace/kept.txt', { timeoutMs: 30_000 })).stdout.toString(), 'kept\n');
      await guest.stop();
    } finally {
      await client.dispose();
    }
  });

  it('never formats a session disk that holds data but no file system: the boot fails saying so, the bytes stay', { timeout: BOOT_MS + 60_000 }, async () => {
    // a disk whose file system blkid does not find, though it holds data (a task's changes may be
    // there): formatting it would wipe them silently; cowork-init refuses and says why
    const disk = path.join(sessions.dir, 'garbled.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '2G']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 64k`, disk], { stdio: 'ignore' });
    const before = execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x5a 0 64k', disk]).toString();
    assert.match(before, /read 65536\/65536 bytes/, before);
    const client = startHelper();
    try {
      await assert.rejects(
        client.request('vm.start', { vmId: 'garbled', workspace: ws.dir, sessionDisk: disk, accelerator: testAccelerator(), ...vmResources() }),
        /holds data but no file system blkid recognizes .* it is not formatted/,
      );
    } finally {
      await client.dispose();
    }
    // the pattern is still there: nothing wrote over it
    const after = execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x5a 0 64k', disk]).toString();
    assert.match(after, /read 65536\/65536 bytes/, `the disk was written: ${after}`);
    assert.doesNotMatch(after, /Pattern verification failed/, after);
  });

  it('closing the helper stdin shuts the VM down within a bounded time', { timeout: BOOT_MS + 60_000 }, async () => {
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

  it('refuses bad input with errors that say what to do', { timeout: 120_000 }, async () => {
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

  it('detects a corrupt cached image, rebuilds what it can, and names the missing tool otherwise', { timeout: 300_000 }, async () => {
    const cache = await tempDir('cache');
    try {
      // the finished layers only: an interrupted build (<layer>.tmp-<pid>-<time>, pruned by the next
      // build) can hold a chroot's device nodes, which cannot be copied
      await cp(path.join(defaultCacheDir(), 'images'), path.join(cache.dir, 'images'), { recursive: true, filter: (src) => !/\.tmp-\d+-\d+$/.test(path.basename(src)) });
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
