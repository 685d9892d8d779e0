// Faults of a running task with a real guest: the SSH connection dropped mid-command (its socket
// destroyed on the host side) and QEMU killed with SIGKILL mid-command. A real TaskManager and
// Task (the extension's session layer), the real helper, QEMU, sshd and guest agent; the model is
// the scripted Messages API. For each: no orphan process, the change set before and after
// compared by hash, a clear message, the task usable afterwards. On a failure the guest's serial
// console and the helper's log of this file are kept in .test-work/fault-logs/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readChangeSet } from '../../extension/changes/changeSet';
import { SettingsSchema } from '../../extension/config/settings';
import { RESTART_NOTE, VM_LOST_PREFIX, type Task } from '../../extension/session/task';
import { TaskManager } from '../../extension/session/taskManager';
import { VmHelper } from '../../extension/session/vmHelper';
import { fault } from '../support/faults';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { HELPER, ROOT, tempDir, testAccelerator } from '../vm/harness';
import { until } from '../support/wait';

const API_KEY = 'sk-ant-api03-fault-test-key-0123456789';
/** Everything the helper and the session layer logged (the guest's console lines among them). */
const logLines: string[] = [];
const keep = (level: string) => (message: string): void => {
  logLines.push(`${new Date().toISOString()} [${level}] ${message}`);
  if (process.env.COWORK_TEST_VERBOSE && level !== 'trace') console.error(message);
};
const log = { trace: keep('trace'), debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };

/** Runs a fault's check; on failure the log so far is kept as .test-work/fault-logs/taskVm-<name>-<time>.log. */
async function keepingLogs(name: string, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    const dir = path.join(ROOT, '.test-work', 'fault-logs');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `taskVm-${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
    appendFileSync(file, `${logLines.join('\n')}\n\nFAILED: ${err instanceof Error ? err.stack : String(err)}\n`);
    console.error(`the helper's log and the guest console are kept in ${file}`);
    throw err;
  }
}
let root: Awaited<ReturnType<typeof tempDir>>;
let model: ScriptedModel;
let helper: VmHelper;
let manager: TaskManager;
let task: Task;

/** Fails with what it waited for when the deadline passes. */
/** pids of processes whose command line mentions this test's folder (QEMU names the session disk there). */
function processesOfThisTest(): number[] {
  try {
    return execFileSync('pgrep', ['-f', `${root.dir}/`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number).filter((p) => p !== process.pid);
  } catch {
    return [];
  }
}

function qemuPid(): number {
  const out = execFileSync('pgrep', ['-f', `qemu-system.*${task.vm.sessionDisk}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  assert.equal(out.length, 1, `one QEMU for the task's session disk (found ${out.length})`);
  return out[0]!;
}

async function changeHashes(): Promise<string> {
  const cs = await readChangeSet(await task.guest());
  return JSON.stringify(cs.changes.map((c) => [c.path.toString('base64'), c.kind, c.sha256 ?? c.target?.toString('base64') ?? '']));
}

/** Resolves with the first live output chunk of a tool call that contains `marker`. */
function outputSeen(marker: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (e: { type: string; chunk?: string }): void => {
      if (e.type === 'tool_output' && e.chunk?.includes(marker)) {
        task.off('live', on);
        resolve();
      }
    };
    task.on('live', on);
  });
}

before(
  async () => {
    root = await tempDir('faults-taskvm');
    const ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    await writeFile(path.join(ws, 'README.md'), '# project\n');
    model = new ScriptedModel();
    const baseURL = await model.start();
    helper = new VmHelper({ helperPath: HELPER, log });
    const settings = SettingsSchema.parse({ apiBaseUrl: baseURL, 'vm.accelerator': testAccelerator(), 'vm.cpus': 2, 'vm.memoryMiB': 1024, 'vm.diskGiB': 4, 'vm.idleStopMinutes': 0 });
    manager = await TaskManager.load({ helper, workspace: ws, storageDir: path.join(root.dir, 'storage'), log, apiKey: () => Promise.resolve(API_KEY), settings: () => settings });
    model.play(say(toolUse('bash', { command: 'printf "first change\\n" > one.txt && echo ok' })), say(text('Wrote one.txt.')));
    const created = await manager.create('write one.txt');
    task = created.task;
    assert.equal(await created.done, 'done');
  },
  { timeout: 300_000 },
);

after(
  async () => {
    await manager?.dispose();
    await helper?.dispose();
    await model?.close();
    await until('every process of this test to exit', () => processesOfThisTest().length === 0, 20_000).catch((err: unknown) => {
      for (const pid of processesOfThisTest()) process.kill(pid, 'SIGKILL');
      throw err;
    });
    await root?.dispose();
  },
  { timeout: 60_000 },
);

describe('task faults with a real guest', { timeout: 900_000 }, () => {
  it('the SSH connection dropped mid-command: restored, the model told, the command gone, nothing lost', { timeout: 240_000 }, async () => {
    await fault('task', 'ssh connection dropped mid-stream', () => keepingLogs('ssh-dropped', async () => {
      const before = await changeHashes();
      assert.match(before, /b25lLnR4dA==/, 'one.txt is in the change set');
      const qemu = qemuPid();
      model.play(say(toolUse('bash', { command: 'echo dropping-soon; sleep 45; echo never > never.txt' })), say(text('Noted the interruption.')));
      const seen = outputSeen('dropping-soon');
      const done = manager.send(task, 'run the long command');
      await seen;
      const sleeping = async (): Promise<boolean> => (await task.vm.guestVm!.sh("pgrep -f '^sleep 45$' || true", { timeoutMs: 20_000 })).stdout.toString().trim() !== '';
      assert.ok(await sleeping(), 'the command runs in the guest (seen by root, outside the sandbox)');
      // the host side of the TCP connection to the guest's sshd goes away
      (task.vm.guestVm!.connection.raw as unknown as { _sock: Socket })._sock.destroy();
      assert.equal(await done, 'done', 'the turn goes on after the reconnect');
      const result = task.transcript.all.filter((e) => e.type === 'tool_result').at(-1)!;
      assert.ok(result.type === 'tool_result' && result.isError);
      assert.match(result.content, /connection to the VM dropped during this call and was restored; the command was interrupted/);
      await until('the interrupted command to be gone from the guest', async () => !(await sleeping()), 20_000);
      assert.equal(qemuPid(), qemu, 'the same VM (only the connection was replaced)');
      assert.equal(await changeHashes(), before, 'the change set is unchanged (and never.txt was not written)');
      assert.equal(task.state, 'idle');
    }));
  });

  it('QEMU killed (SIGKILL) mid-command: "VM stopped unexpectedly", restart on the same disk, the agent told, nothing lost', { timeout: 400_000 }, async () => {
    await fault('task', 'qemu killed mid-command', () => keepingLogs('qemu-killed', async () => {
      // no sync: the change set's scan (changeHashes) is what makes a listed change durable, and
      // QEMU is killed right after it, well within the guest's writeback delay
      model.play(say(toolUse('bash', { command: 'printf "second\\n" > two.txt && echo killing-soon && sleep 60' })));
      const seen = outputSeen('killing-soon');
      const done = manager.send(task, 'write two.txt and wait');
      await seen;
      const before = await changeHashes();
      assert.match(before, /dHdvLnR4dA==/, 'two.txt is in the change set');
      const qemu = qemuPid();
      const requestsBefore = model.requests.length;
      process.kill(qemu, 'SIGKILL');
      const outcome = await done;
      assert.equal(outcome, 'stopped', 'the turn was interrupted');
      assert.equal(task.state, 'failed');
      assert.ok(task.vm.lost, 'the VM is marked as lost');
      assert.match(task.vm.current.detail ?? '', /The VM stopped unexpectedly .* — Restart/);
      const err = task.transcript.all.find((e) => e.type === 'error' && e.message.startsWith(VM_LOST_PREFIX));
      assert.ok(err && err.type === 'error' && /Restart/.test(err.action ?? ''), 'the transcript says so, with the Restart action');
      const stopped = task.transcript.all.at(-1)!;
      assert.ok(stopped.type === 'stopped' && stopped.reason.startsWith(VM_LOST_PREFIX), `the turn ends with the VM's reason, not "the person stopped": ${JSON.stringify(stopped)}`);
      assert.equal(model.requests.length, requestsBefore, 'no further model request after the VM died');
      await until('no QEMU for the task any more', () => {
        try {
          execFileSync('pgrep', ['-f', `qemu-system.*${task.vm.sessionDisk}`]);
          return false;
        } catch {
          return true;
        }
      }, 20_000);

      await task.restartVm();
      assert.equal(task.state, 'idle');
      assert.equal(task.vm.lost, undefined);
      assert.equal(await changeHashes(), before, 'the restarted VM shows the same changes (same session disk)');

      model.play(say(text('Understood, the VM was restarted.')));
      assert.equal(await manager.send(task, 'carry on'), 'done', 'the task is usable');
      const last = model.requests.at(-1)!.body.messages.at(-1)!;
      const said = JSON.stringify(last.content);
      assert.ok(said.includes(RESTART_NOTE.slice(0, 60)), `the agent is told the VM restarted: ${said.slice(0, 300)}`);
      assert.notEqual(qemuPid(), qemu, 'exactly one QEMU, the new one: the killed one left nothing behind');
    }));
  });
});
