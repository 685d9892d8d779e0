// Faults of the vm-host helper, with real parts:
//  - QEMU failing under a hardware accelerator: a wrapper QEMU (COWORK_QEMU_BINARY) that aborts as
//    QEMU 7.2 does on a paravirtual KVM ("failed to set MSR 0x10a", kvm_buf_set_msrs assertion,
//    SIGABRT) whenever `-accel kvm` is among its arguments, and otherwise execs the real QEMU; the
//    probe is told KVM is usable (COWORK_TEST_FAKE_KVM=1), so this runs on every machine. `auto`
//    must boot under TCG with the one-line reason, an explicit `kvm` must fail with it, and nothing
//    may hang;
//  - a QEMU that ignores SIGTERM (stopped) when the helper shuts down: the shutdown stays bounded;
//  - the helper SIGKILLed, or its stdin closed, during the first image build: no mmdebstrap or
//    tar2sqfs is left running, and the interrupted build's temporary layer is pruned by the next.
// Run under the lock: flock /tmp/cowork-vm.lock node --import tsx --test test/faults/vmHost.test.ts
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import type { VmHostEvent } from '../../extension/protocol/vmHost';
import { defaultCacheDir } from '../../vm-host/image/cacheDir';
import { SHUTDOWN_DEADLINE_MS } from '../../vm-host/server';
import { fault } from '../support/faults';
import { isAlive, startHelper, tempDir, vmResources, waitFor } from '../vm/harness';

const BOOT_MS = 300_000;

function collect(client: VmHostClient): VmHostEvent[] {
  const events: VmHostEvent[] = [];
  client.onEvent((ev) => events.push(ev));
  return events;
}

async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Processes (pid and command) still in any of these process groups. */
function inGroups(pgids: readonly number[]): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && pgids.includes(Number(f[1])))
    .map((f) => `${f[0]} ${f.slice(2).join(' ')}`);
}

describe('vm-host faults', { timeout: 1_800_000 }, () => {
  let ws: Awaited<ReturnType<typeof tempDir>>;
  let work: Awaited<ReturnType<typeof tempDir>>;
  let wrapper: string;
  let wrapperLog: string;
  let cacheDir: string;

  before(async () => {
    ws = await tempDir('ws');
    work = await tempDir('faults');
    const real = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
    wrapper = path.join(work.dir, 'qemu-broken-kvm');
    wrapperLog = path.join(work.dir, 'qemu-broken-kvm.log');
    await writeFile(
      wrapper,
      `#!/bin/sh
# A QEMU that cannot use KVM, like QEMU 7.2 on a paravirtual KVM host: it aborts when -accel kvm is given.
prev=
for a in "$@"; do
  if [ "$prev" = "-accel" ]; then
    case "$a" in
      kvm*)
        echo "kvm $a" >> '${wrapperLog}'
        echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000c04" >&2
        echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3050: kvm_buf_set_msrs: Assertion \\\`ret == cpu->kvm_msr_buf->nmsrs' failed." >&2
        ulimit -c 0
        kill -ABRT $$
        ;;
    esac
  fi
  prev=$a
done
exec '${real}' "$@"
`,
    );
    await chmod(wrapper, 0o755);
    await chmod(work.dir, 0o755);
    // the real image cache, but verdicts and boot times of this test's own
    cacheDir = path.join(work.dir, 'cache');
    await mkdir(cacheDir);
    await symlink(path.join(defaultCacheDir(), 'images'), path.join(cacheDir, 'images'));
  }, { timeout: 30_000 });

  after(async () => {
    await ws?.dispose();
    await work?.dispose();
  }, { timeout: 30_000 });

  it('QEMU aborting under KVM: an explicit kvm fails with the reason, auto boots under TCG and says why; a frozen QEMU does not hold up shutdown', { timeout: 2 * BOOT_MS }, async () => {
    const client = startHelper({ COWORK_QEMU_BINARY: wrapper, COWORK_TEST_FAKE_KVM: '1', COWORK_CACHE_DIR: cacheDir });
    const events = collect(client);
    const params = (vmId: string, accelerator: 'kvm' | 'auto') => ({ vmId, workspace: ws.dir, sessionDisk: path.join(work.dir, `${vmId}.qcow2`), accelerator, ...vmResources() });
    try {
      const hello = await client.hello();
      assert.ok(hello.accelerators.includes('kvm'), 'the fake probe offers kvm');

      await fault('vm-host', 'QEMU aborts under an explicit kvm', async () => {
        const t0 = Date.now();
        await assert.rejects(client.request('vm.start', params('explicit', 'kvm')), (e: Error & { helperCode?: string }) => {
          assert.equal(e.helperCode, 'accelerator-unusable');
          assert.match(e.message, /^KVM is present but QEMU could not use it: error: failed to set MSR 0x10a to 0x2000c04\. Set cowork\.vm\.accelerator to "auto"/);
          return true;
        });
        assert.ok(Date.now() - t0 < 60_000, `the failure took ${Date.now() - t0} ms`);
        assert.deepEqual((await client.request('vm.list', {})).vms, [], 'nothing stays registered');
        assert.ok(!(await readdir(cacheDir)).includes('unusable-accelerators.json'), 'an explicit choice records no verdict for auto');
      });

      await fault('vm-host', 'QEMU aborts under KVM with auto', async () => {
        const info = await client.request('vm.start', params('auto', 'auto'));
        assert.equal(info.accelerator, 'tcg');
        const expected = 'KVM is present but QEMU could not use it: error: failed to set MSR 0x10a to 0x2000c04 — running emulated, slower';
        assert.equal(info.notice, expected);
        assert.ok(events.some((ev) => ev.event === 'vm.notice' && ev.vmId === 'auto' && ev.message === expected), 'the notice is sent as an event');
        const steps = events.filter((ev): ev is Extract<VmHostEvent, { event: 'vm.progress' }> => ev.event === 'vm.progress' && ev.vmId === 'auto');
        const kvmStart = steps.find((s) => s.accelerator === 'kvm');
        const tcgStart = steps.find((s) => s.accelerator === 'tcg');
        assert.ok(kvmStart && tcgStart, 'kvm was tried, then tcg');
        assert.ok(steps.some((s) => s.accelerator === 'tcg' && s.step !== 'kernel'), 'the guest\'s own boot steps are reported');
        const kvmLog = (await readFile(wrapperLog, 'utf8')).trim().split('\n');
        assert.equal(kvmLog.length, 2, 'one kvm attempt for the explicit start, one for auto');
        const verdicts = JSON.parse(await readFile(path.join(cacheDir, 'unusable-accelerators.json'), 'utf8')) as Record<string, { usable?: boolean; reason: string }>;
        assert.equal(verdicts.kvm?.usable, false);
        assert.match(verdicts.kvm.reason, /failed to set MSR 0x10a/);
        const times = JSON.parse(await readFile(path.join(cacheDir, 'boot-times.json'), 'utf8')) as Record<string, { bootMs: number }>;
        assert.equal(times.tcg?.bootMs, info.bootMs, 'the boot time is recorded for the next time-out');
        console.log(`figure: TCG boot after the KVM fallback ${(info.bootMs / 1000).toFixed(1)} s`);
      });

      await fault('vm-host', 'QEMU ignores SIGTERM at shutdown', async () => {
        const pid = (await client.request('vm.list', {})).vms.find((v) => v.vmId === 'auto')!.pid!;
        process.kill(pid, 'SIGSTOP'); // a stopped process does not act on SIGTERM
        const t0 = Date.now();
        await client.dispose(60_000);
        const elapsed = Date.now() - t0;
        assert.ok(elapsed < SHUTDOWN_DEADLINE_MS + 3_000, `the helper took ${elapsed} ms to shut down`);
        assert.ok(await waitFor(() => !isAlive(pid), 5_000), 'the frozen QEMU is gone');
      });
    } finally {
      await client.dispose();
    }
  });

  it('the helper SIGKILLed, then its stdin closed, during the first image build: no build process is left, and the leftover is pruned', { timeout: 300_000 }, async () => {
    const cache = path.join(work.dir, 'empty-cache');
    const groupsOf = (events: VmHostEvent[]): number[] =>
      events.flatMap((ev) => {
        const m = ev.event === 'log' ? /\[image\] build process group (\d+) started/.exec(ev.message) : null;
        return m ? [Number(m[1])] : [];
      });

    await fault('vm-host', 'helper SIGKILLed during the first image build', async () => {
      const client = startHelper({ COWORK_CACHE_DIR: cache });
      const events = collect(client);
      const building = client.request('image.ensure', {}).catch((err: unknown) => err);
      const groups = await until('the build process groups (mmdebstrap | tar2sqfs)', () => (groupsOf(events).length === 2 ? groupsOf(events) : undefined), 60_000);
      await until('mmdebstrap running', () => (inGroups(groups).some((p) => p.includes('mmdebstrap')) ? true : undefined), 30_000);
      process.kill(client.pid!, 'SIGKILL');
      await client.exited;
      assert.ok(await building);
      assert.ok(await waitFor(() => inGroups(groups).length === 0, 15_000), `still running: ${inGroups(groups).join('; ')}`);
      const leftovers = (await readdir(path.join(cache, 'images'))).filter((n) => n.includes('.tmp-'));
      assert.equal(leftovers.length, 1, 'the interrupted build left its temporary layer (nothing could remove it)');
    });

    await fault('vm-host', 'helper stdin closed during the first image build', async () => {
      const before = (await readdir(path.join(cache, 'images'))).filter((n) => n.includes('.tmp-'));
      const client = startHelper({ COWORK_CACHE_DIR: cache });
      const events = collect(client);
      const building = client.request('image.ensure', {}).catch((err: unknown) => err);
      const groups = await until('the build process groups of the second build', () => (groupsOf(events).length === 2 ? groupsOf(events) : undefined), 60_000);
      await until('mmdebstrap running', () => (inGroups(groups).some((p) => p.includes('mmdebstrap')) ? true : undefined), 30_000);
      const now = (await readdir(path.join(cache, 'images'))).filter((n) => n.includes('.tmp-'));
      assert.ok(!now.some((n) => before.includes(n)), `the stale layer ${before.join(', ')} is pruned when the next build starts`);
      assert.ok(events.some((ev) => ev.event === 'log' && ev.message.includes(`removing the interrupted build ${before[0]}`)));
      const t0 = Date.now();
      await client.dispose(60_000);
      assert.ok(Date.now() - t0 < SHUTDOWN_DEADLINE_MS + 3_000, `closing the helper took ${Date.now() - t0} ms`);
      const err = await building;
      assert.ok(err instanceof Error);
      assert.ok(await waitFor(() => inGroups(groups).length === 0, 15_000), `still running: ${inGroups(groups).join('; ')}`);
      assert.deepEqual((await readdir(path.join(cache, 'images'))).filter((n) => n.includes('.tmp-')), [], 'a cancelled build removes its own temporary layer');
    });
  });
});
