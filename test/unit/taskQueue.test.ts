// TaskManager without a VM: a queued task can be stopped (its message kept), a follow-up to a queued
// task is refused with a message, and the slot passes to the next task that still waits. The first
// task holds its slot by waiting for its API key, which the test hands over when it wants.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { SettingsSchema } from '../../extension/config/settings';
import { VmHelper } from '../../extension/session/vmHelper';
import { QUEUED_REFUSAL } from '../../extension/session/task';
import { TaskManager } from '../../extension/session/taskManager';

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function manager(apiKey: () => Promise<string | undefined>): Promise<TaskManager> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-queue-'));
  dirs.push(dir);
  const settings = SettingsSchema.parse({ maxParallelTasks: 1 });
  // the helper is never started: no task here gets as far as booting a VM
  return TaskManager.load({ helper: new VmHelper({ helperPath: '/nonexistent', log: quiet }), workspace: dir, storageDir: dir, log: quiet, apiKey, settings: () => settings });
}

describe('queued tasks', { timeout: 30_000 }, () => {
  it('a queued task can be stopped; a follow-up while queued is refused with a message', { timeout: 20_000 }, async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const m = await manager(async () => {
      await gate;
      return undefined; // no key: the turn ends at once with a clear error
    });
    const refusals: string[] = [];
    m.on('refused', (_id, msg) => refusals.push(msg));
    const first = await m.create('first task');
    const second = await m.create('second task');
    const third = await m.create('third task');
    assert.equal(second.task.state, 'queued');
    assert.ok(second.task.isQueued && third.task.isQueued);

    assert.equal(await m.send(second.task, 'a follow-up while queued'), 'refused');
    assert.deepEqual(refusals, [QUEUED_REFUSAL]);

    second.task.stop();
    assert.equal(await second.done, 'stopped');
    assert.equal(second.task.state, 'stopped');
    assert.equal(second.task.isQueued, false);
    const events = second.task.transcript.all;
    assert.deepEqual(
      events.map((e) => e.type),
      ['user', 'stopped'],
      'the prompt is kept (a follow-up continues from it) and the stop is recorded',
    );
    assert.equal(events[0]!.type === 'user' && events[0]!.text, 'second task');

    // the slot skips the stopped task and goes to the third
    release();
    assert.equal(await first.done, 'error');
    assert.equal(await third.done, 'error');
    assert.equal(third.task.transcript.all.filter((e) => e.type === 'user').length, 1);
    await m.dispose();
  });
});
