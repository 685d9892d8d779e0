// Task storage without a VM: Delete Task removes the task's disk, folder and egress log (and is
// refused while it runs); Clean Up's orphan pass removes only disks of this workspace that belong
// to no task (never a listed task's, never another workspace's); disk usage is the allocated
// size; the shutdown bound returns in time even when a step hangs.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { SettingsSchema } from '../../extension/config/settings';
import { shutdownWithin } from '../../extension/session/shutdown';
import { TaskManager } from '../../extension/session/taskManager';
import { VmHelper } from '../../extension/session/vmHelper';

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function storage(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'cowork-storage-'));
  dirs.push(d);
  return d;
}

async function manager(dir: string, apiKey: () => Promise<string | undefined> = () => Promise.resolve(undefined)): Promise<TaskManager> {
  const settings = SettingsSchema.parse({ maxParallelTasks: 1 });
  return TaskManager.load({ helper: new VmHelper({ helperPath: '/nonexistent', log: quiet }), workspace: dir, storageDir: dir, log: quiet, apiKey, settings: () => settings });
}

const MiB = Buffer.alloc(1024 * 1024, 7);

describe('task storage', { timeout: 30_000 }, () => {
  it('Delete Task removes the task, its disk, folder and egress log, and says what it freed', async () => {
    const dir = await storage();
    const m = await manager(dir);
    const a = await m.create('keep me');
    const b = await m.create('delete me');
    await Promise.all([a.done, b.done]);
    await mkdir(path.dirname(b.task.vm.sessionDisk), { recursive: true });
    await writeFile(b.task.vm.sessionDisk, MiB);
    await writeFile(a.task.vm.sessionDisk, MiB);
    await mkdir(path.dirname(b.task.vm.egressLog), { recursive: true });
    await writeFile(b.task.vm.egressLog, '{}\n');
    const usage = await m.diskUsage();
    assert.ok((usage.get(b.task.info.id) ?? 0) >= MiB.length, 'disk usage is the allocated size');
    const { freedBytes } = await m.delete(b.task.info.id);
    assert.ok(freedBytes >= MiB.length);
    assert.deepEqual(m.list().map((t) => t.title), ['keep me']);
    await assert.rejects(stat(b.task.vm.sessionDisk));
    await assert.rejects(stat(b.task.storageDir));
    await assert.rejects(stat(b.task.vm.egressLog));
    await stat(a.task.vm.sessionDisk);
    const reloaded = await manager(dir);
    assert.deepEqual(reloaded.list().map((t) => t.title), ['keep me'], 'the deletion is saved');
  });

  it('Delete Task is refused while the task runs or waits in the queue', async () => {
    const dir = await storage();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const m = await manager(dir, async () => {
      await gate;
      return undefined;
    });
    const running = await m.create('running');
    const queued = await m.create('queued');
    await assert.rejects(m.delete(running.task.info.id), /is running; stop it first/);
    await assert.rejects(m.delete(queued.task.info.id), /is running; stop it first/);
    release();
    await Promise.all([running.done, queued.done]);
    await m.delete(queued.task.info.id);
  });

  it('Clean Up removes only orphan disks of this workspace: never a listed task\'s, never another workspace\'s', async () => {
    const dir = await storage();
    const other = await storage();
    const m = await manager(dir);
    const a = await m.create('a task');
    await a.done;
    const sessions = path.join(dir, 'sessions');
    await mkdir(sessions, { recursive: true });
    await writeFile(a.task.vm.sessionDisk, MiB);
    await writeFile(path.join(sessions, 'task-0123456789ab.qcow2'), MiB); // left by a deleted task
    await writeFile(path.join(sessions, 'notes.txt'), 'not a disk');
    await mkdir(path.join(other, 'sessions'));
    await writeFile(path.join(other, 'sessions', 'task-ffffffffffff.qcow2'), MiB); // another window's workspace
    const r = await m.removeOrphanDisks();
    assert.deepEqual(r.removed, ['task-0123456789ab.qcow2']);
    assert.ok(r.freedBytes >= MiB.length);
    assert.deepEqual((await readdir(sessions)).sort(), [path.basename(a.task.vm.sessionDisk), 'notes.txt'].sort());
    assert.deepEqual(await readdir(path.join(other, 'sessions')), ['task-ffffffffffff.qcow2']);
  });

  it('the shutdown bound returns in time when a step hangs, and reports failed steps', async () => {
    const started = Date.now();
    const r = await shutdownWithin(300, [() => new Promise(() => undefined), () => Promise.reject(new Error('sync failed'))]);
    assert.equal(r.inTime, false);
    assert.ok(Date.now() - started < 5_000);
    const ok = await shutdownWithin(5_000, [() => Promise.resolve(), () => Promise.reject(new Error('sync failed'))]);
    assert.deepEqual(ok, { inTime: true, failures: ['Error: sync failed'] });
  });
});
