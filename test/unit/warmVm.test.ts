// The warm VM's decisions that need no guest: what counts as the same VM shape (a task adopts the
// warm VM only then), the battery check from sysfs, no boot while the setting is off, the host is
// on battery or Stop VM holds it off, and its place under cowork.maxParallelTasks. The VM suite (test/vm/warmVm.test.ts) covers adoption with real guests.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SettingsSchema } from '../../extension/config/settings';
import type { VmHelper } from '../../extension/session/vmHelper';
import { TaskManager } from '../../extension/session/taskManager';
import { onBattery, WarmVm } from '../../extension/session/warmVm';
import { bootShapeDifference, vmStartParams } from '../../extension/session/vmStartParams';

const place = { workspace: '/w', sessionDisk: '/s/task-a.qcow2', cacheDisk: '/c/ws.qcow2' };
const base = SettingsSchema.parse({ 'vm.cpus': 2, 'vm.memoryMiB': 1024, 'vm.diskGiB': 4 });

describe('warm VM shape', () => {
  it('the name and session disk do not matter; everything fixed at boot does', () => {
    const booted = vmStartParams({ ...place, vmId: 'task-a' }, base, { packages: ['jq', 'zip'] });
    assert.equal(bootShapeDifference(booted, vmStartParams({ ...place, vmId: 'task-b', sessionDisk: '/s/task-b.qcow2' }, base, { packages: ['zip', 'jq'] })), undefined, 'package order is not a difference');
    // layer null: none (undefined would take the default)
    const differs = (s: Partial<typeof base>, layer: { packages: string[]; setup?: string } | null = { packages: ['jq', 'zip'] }, p = place): string | undefined => bootShapeDifference(booted, vmStartParams({ ...p, vmId: 'task-a' }, { ...base, ...s }, layer ?? undefined));
    assert.match(differs({ 'vm.memoryMiB': 2048 }) ?? '', /^memoryMiB 1024 → 2048$/);
    assert.match(differs({ 'vm.cpus': 1 }) ?? '', /^cpus/);
    assert.match(differs({ 'vm.diskGiB': 5 }) ?? '', /^diskGiB/);
    assert.match(differs({ 'vm.accelerator': 'tcg' }) ?? '', /^accelerator "auto" → "tcg"/);
    assert.match(differs({}, null) ?? '', /^guestLayer/);
    assert.match(differs({}, { packages: ['jq', 'zip'], setup: 'true' }) ?? '', /^guestLayer/);
    assert.match(differs({}, { packages: ['jq', 'zip'] }, { ...place, workspace: '/other' }) ?? '', /^workspace/);
    assert.match(differs({}, { packages: ['jq', 'zip'] }, { workspace: '/w', sessionDisk: '/s/x.qcow2' } as typeof place) ?? '', /^cacheDisk/);
    assert.equal(differs({ 'network.allowedDomains': ['example.com'], model: 'other', 'vm.idleStopMinutes': 1 }), undefined, 'per-task settings attach at adoption');
  });
});

describe('battery', () => {
  it('discharging when a Battery-type supply says so; mains and a charging battery are not', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-power-'));
    try {
      const supply = async (name: string, type: string, status?: string): Promise<void> => {
        await mkdir(path.join(dir, name));
        await writeFile(path.join(dir, name, 'type'), `${type}\n`);
        if (status) await writeFile(path.join(dir, name, 'status'), `${status}\n`);
      };
      assert.equal(await onBattery(path.join(dir, 'missing')), false, 'no sysfs: no opinion');
      await supply('AC', 'Mains');
      await supply('BAT0', 'Battery', 'Charging');
      assert.equal(await onBattery(dir), false);
      await supply('BAT1', 'Battery', 'Discharging');
      assert.equal(await onBattery(dir), true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('when no warm VM boots', () => {
  // a helper that fails the test if the warm VM tried to use it
  const helper = {
    onEvent: () => ({ dispose() {} }),
    onExit: () => ({ dispose() {} }),
    get: () => assert.fail('the warm VM must not start the helper'),
  } as unknown as VmHelper;
  const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

  it('the setting is off, or the host runs on battery', async () => {
    let battery = false;
    let settings = { ...base, 'vm.warm': false };
    const warm = new WarmVm({ helper, workspace: '/w', storageDir: '/s', log: quiet, settings: () => settings, onBattery: () => Promise.resolve(battery) });
    await warm.fill();
    assert.equal(warm.state, 'off');
    settings = { ...base, 'vm.warm': true };
    battery = true;
    await warm.fill();
    assert.equal(warm.state, 'off');
    assert.equal(warm.claimId(), undefined, 'no id to hand out without a warm VM');
    await warm.dispose();
  });
});

describe('Stop VM and cowork.maxParallelTasks', () => {
  const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

  it('after stop() no warm boot is tried until resume()', async () => {
    // a helper that counts boot attempts (and fails them: no guest here)
    let attempts = 0;
    const helper = {
      onEvent: () => ({ dispose() {} }),
      onExit: () => ({ dispose() {} }),
      get: () => {
        attempts++;
        throw new Error('no helper in a unit test');
      },
    } as unknown as VmHelper;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-warm-unit-'));
    try {
      const warm = new WarmVm({ helper, workspace: '/w', storageDir: dir, log: quiet, settings: () => ({ ...base, 'vm.warm': true }), onBattery: () => Promise.resolve(false) });
      await warm.stop('Stop VM');
      await warm.fill();
      assert.equal(attempts, 0, 'held off after Stop VM');
      assert.equal(warm.isHeld, true);
      warm.resume();
      await warm.fill();
      assert.equal(attempts, 1, 'a boot is tried again after resume()');
      await warm.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the warm VM fits only while the tasks\' VMs that are up leave room under the limit', () => {
    assert.equal(TaskManager.warmFits(0, 1), true);
    assert.equal(TaskManager.warmFits(1, 1), false, 'one task VM up fills maxParallelTasks = 1');
    assert.equal(TaskManager.warmFits(1, 2), true);
    assert.equal(TaskManager.warmFits(2, 2), false);
    assert.equal(TaskManager.warmFits(3, 2), false, 'idle task VMs may exceed the limit (it bounds turns): still no warm VM');
  });
});
