// The warm VM's decisions that need no guest: what counts as the same VM shape (a task adopts the
// warm VM only then), the battery check from sysfs, no boot while the setting is off, the host is
// on battery or Stop VM holds it off, its place under cowork.maxParallelTasks, and a claim that
// no task adopts (a failed Delegate, a turn without an API key) never keeps the warm VM from the next task. The VM suite (test/vm/warmVm.test.ts) covers adoption with real guests.
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
import { until } from '../support/wait';

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

describe('a claimed warm VM is never left serving no task', () => {
  const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

  /**
   * A helper whose VMs boot forever (the warm VM stays 'booting', which a task may claim, as when
   * Delegate comes during the warm boot) and stop when asked: `up` is every VM started and not
   * stopped, what holds memory on the host.
   */
  function bootingHelper(): { helper: VmHelper; up: Set<string> } {
    const up = new Set<string>();
    const booting = new Map<string, (err: Error) => void>();
    const client = {
      request: (method: string, params: { vmId: string }): Promise<unknown> => {
        if (method === 'vm.start') {
          up.add(params.vmId);
          return new Promise((_resolve, reject) => booting.set(params.vmId, reject));
        }
        if (method === 'vm.stop') {
          up.delete(params.vmId);
          booting.get(params.vmId)?.(new Error('stopped while booting'));
          booting.delete(params.vmId);
          return Promise.resolve({});
        }
        return Promise.reject(new Error(`the fake helper has no ${method}`));
      },
    };
    const helper = { onEvent: () => ({ dispose() {} }), onExit: () => ({ dispose() {} }), get: () => client } as unknown as VmHelper;
    return { helper, up };
  }

  async function setUp(apiKey: () => Promise<string | undefined> = () => Promise.resolve(undefined)): Promise<{ dir: string; warm: WarmVm; manager: TaskManager; up: Set<string>; settings: { broken: boolean } }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-warm-claim-'));
    const { helper, up } = bootingHelper();
    const state = { broken: false };
    const good = { ...base, 'vm.warm': true, maxParallelTasks: 1, 'vm.idleStopMinutes': 0 };
    const settings = (): typeof good => {
      if (state.broken) throw new Error('cowork.network.extraCaCertificates: /gone/ca.pem cannot be read');
      return good;
    };
    const warm = new WarmVm({ helper, workspace: '/w', storageDir: dir, log: quiet, settings, onBattery: () => Promise.resolve(false) });
    const manager = await TaskManager.load({ helper, workspace: '/w', storageDir: dir, log: quiet, apiKey, settings, warm });
    await until('the warm VM\'s boot to reach the helper', () => warm.state === 'booting' && up.has(warm.vmId!), 5_000);
    return { dir, warm, manager, up, settings: state };
  }

  it('a Delegate that fails (settings, or the task folder) leaves the warm VM unclaimed, and the next task gets it', async () => {
    const { dir, warm, manager, up, settings } = await setUp();
    try {
      const warmId = warm.vmId;
      settings.broken = true;
      await assert.rejects(manager.create('first'), /extraCaCertificates/);
      settings.broken = false;
      assert.equal(warm.claimed, false, 'a settings error does not claim the warm VM');
      // the task folder cannot be made: a file where the tasks folder goes
      await writeFile(path.join(dir, 'tasks'), 'not a folder');
      await assert.rejects(manager.create('second'));
      assert.equal(warm.claimed, false, 'a failed create hands the warm VM back');
      assert.equal(warm.vmId, warmId, 'the same warm VM, still up');
      await rm(path.join(dir, 'tasks'));
      const { task, done } = await manager.create('third');
      assert.equal(task.vm.vmId, warmId, 'the next task is promised the warm VM');
      await done;
      await until('the next warm VM\'s boot to reach the helper', () => up.has(warm.vmId ?? ''), 5_000);
    } finally {
      await manager.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a turn that ends without adopting its warm VM (no API key) stops it; a fresh one boots, and no more VMs run than maxParallelTasks', async () => {
    const { dir, warm, manager, up } = await setUp();
    try {
      const { task, done } = await manager.create('no key yet');
      assert.equal(task.vm.vmId, warm.vmId, 'the task claimed the warm VM');
      assert.equal(await done, 'error');
      assert.equal(task.state, 'failed');
      assert.equal(up.has(task.vm.vmId), false, 'the warm VM the task never adopted is stopped');
      assert.equal(warm.claimed, false);
      await until('a fresh warm VM to boot for the next task', () => warm.state === 'booting' && warm.vmId !== task.vm.vmId && up.has(warm.vmId!), 5_000);
      assert.ok(up.size <= 1, `VMs up (${[...up].join(', ')}) stay within maxParallelTasks = 1`);
      const next = await manager.create('again');
      assert.equal(next.task.vm.vmId, warm.vmId, 'the next task is promised the fresh warm VM, not a cold boot');
      await next.done;
      await until('the next warm VM\'s boot to reach the helper', () => up.has(warm.vmId ?? ''), 5_000);
    } finally {
      await manager.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a task stopped while queued for a slot gives up the warm VM it claimed', async () => {
    // the first turn waits for its API key, holding the only slot (maxParallelTasks = 1)
    let gate: (key: string | undefined) => void = () => undefined;
    let keyWait = Promise.resolve<string | undefined>(undefined);
    const { dir, warm, manager, up } = await setUp(() => keyWait);
    try {
      // a first task, so that a follow-up to it can hold the slot without claiming the warm VM
      const first = await manager.create('first');
      await first.done;
      await until('a fresh warm VM to boot', () => warm.state === 'booting' && up.has(warm.vmId ?? ''), 5_000);
      keyWait = new Promise((resolve) => (gate = resolve));
      const followUp = manager.send(first.task, 'more');
      const { task, done } = await manager.create('waits for a slot');
      assert.equal(task.vm.vmId, warm.vmId, 'the queued task claimed the warm VM');
      assert.equal(task.state, 'queued');
      task.stop();
      assert.equal(await done, 'stopped');
      assert.equal(up.has(task.vm.vmId), false, 'the claimed warm VM stops with the queued task');
      assert.equal(warm.claimed, false);
      gate(undefined);
      assert.equal(await followUp, 'error');
      await until('a fresh warm VM to boot after the turn', () => warm.state === 'booting' && warm.vmId !== task.vm.vmId && up.has(warm.vmId ?? ''), 5_000);
      assert.ok(up.size <= 1, `VMs up (${[...up].join(', ')}) stay within maxParallelTasks = 1`);
    } finally {
      await manager.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
