// A task's lifecycle with a real guest, through the extension's session layer (TaskManager, Task,
// WorkspaceVm) and the real helper: a start that fails half way stops the VM it booted; the token
// budget counts the current turn, so a follow-up after a budget stop runs; the last change scan
// survives a "window reload" (a new TaskManager on the same storage) and is shown before any VM
// runs, and the rescan when the VM is up agrees with it by hash.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readChangeSet } from '../../extension/changes/changeSet';
import { SettingsSchema, type Settings } from '../../extension/config/settings';
import { TaskManager } from '../../extension/session/taskManager';
import { VmHelper } from '../../extension/session/vmHelper';
import { WorkspaceVm } from '../../extension/session/workspaceVm';
import { shutdownWithin } from '../../extension/session/shutdown';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { HELPER, tempDir, testAccelerator } from './harness';
import { pgrep, until } from '../support/wait';

/** the bound wiring.ts gives deactivate (SHUTDOWN_MS there; wiring imports vscode, so it is repeated here) */
const SHUTDOWN_MS = 5_000;
const API_KEY = 'sk-ant-api03-lifecycle-test-key-0123456789';
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let model: ScriptedModel;
let helper: VmHelper;
let settings: Settings;
const managers: TaskManager[] = [];

const load = async (): Promise<TaskManager> => {
  const m = await TaskManager.load({ helper, workspace: ws, storageDir: path.join(root.dir, 'storage'), log: quiet, apiKey: () => Promise.resolve(API_KEY), settings: () => settings });
  managers.push(m);
  return m;
};

before(
  async () => {
    root = await tempDir('task-lifecycle');
    ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    await writeFile(path.join(ws, 'README.md'), '# project\n');
    model = new ScriptedModel();
    const baseURL = await model.start();
    helper = new VmHelper({ helperPath: HELPER, log: quiet });
    settings = SettingsSchema.parse({ apiBaseUrl: baseURL, 'vm.accelerator': testAccelerator(), 'vm.cpus': 2, 'vm.memoryMiB': 1024, 'vm.diskGiB': 4, 'vm.idleStopMinutes': 0, 'agent.tokenBudget': 1 });
  },
  { timeout: 30_000 },
);

after(
  async () => {
    for (const m of managers) await m.dispose();
    await helper?.dispose();
    await model?.close();
    await until('every process of this test to exit', () => pgrep(`${root.dir}/`).length === 0, 20_000);
    await root?.dispose();
  },
  { timeout: 60_000 },
);

describe('task lifecycle with a real guest', { timeout: 900_000 }, () => {
  it('a start that fails half way (the egress proxy cannot start) stops the VM it booted', { timeout: 240_000 }, async () => {
    const storage = path.join(root.dir, 'halfway');
    await mkdir(storage);
    // the egress audit log's folder is a file: the proxy cannot start once the VM has booted
    await writeFile(path.join(storage, 'egress'), 'not a folder');
    const vm = new WorkspaceVm({ helper, workspace: ws, storageDir: storage, log: quiet, vmId: 'halfway' });
    const states: string[] = [];
    vm.onStatus((s) => states.push(s.state));
    await assert.rejects(vm.start(settings), /EEXIST|ENOTDIR|not a directory|file already exists/);
    assert.ok(states.includes('ready') === false, 'never reported ready');
    assert.equal(vm.current.state, 'failed');
    const { vms } = await helper.get().request('vm.list', {});
    assert.deepEqual(vms.filter((v) => v.vmId === 'halfway'), [], 'the helper no longer has the VM');
    await until('the half-started QEMU to exit', () => pgrep(`qemu-system.*${vm.sessionDisk}`).length === 0, 20_000);
    await vm.dispose();
  });

  it('the token budget counts the current turn: a follow-up after a budget stop runs', { timeout: 300_000 }, async () => {
    const m = await load();
    model.play(say(toolUse('bash', { command: 'printf "made by the agent\\n" > made.txt' })), say(text('Done after the follow-up.')));
    const { task, done } = await m.create('make made.txt');
    assert.equal(await done, 'budget', 'the first turn used more than the 1-token budget');
    assert.equal(model.requests.length, 1);
    assert.match(JSON.stringify(task.transcript.all.at(-1)), /token budget/);
    assert.equal(await m.send(task, 'go on'), 'done', 'the follow-up gets its own budget');
    assert.equal(model.requests.length, 2);
  });

  it('after a reload the last scan lists the changes at once; the rescan with the VM up agrees by hash', { timeout: 300_000 }, async () => {
    const m = managers[0]!;
    const task = m.list().map((t) => m.get(t.id)!)[0]!;
    const cs = await readChangeSet(await task.guest());
    assert.deepEqual(cs.changes.map((c) => c.display), ['made.txt']);
    await task.recordScan(cs.changes);
    const hashes = (changes: readonly { path: Buffer; kind: string; sha256?: string }[]): string => JSON.stringify(changes.map((c) => [c.path.toString('base64'), c.kind, c.sha256]));
    const before = hashes(cs.changes);
    await m.dispose(); // the window closes: the VM stops

    const reloaded = await load();
    const again = reloaded.get(task.info.id)!;
    assert.equal(again.vm.current.state, 'stopped', 'no VM runs yet');
    assert.equal(hashes(again.lastScan?.changes ?? []), before, 'the persisted scan lists the change with its hash');
    const seen: number[] = [];
    again.on('scan', (s) => seen.push(s.changes.length));
    const fresh = await readChangeSet(await again.guest());
    await again.recordScan(fresh.changes);
    assert.equal(hashes(fresh.changes), before, 'the rescan agrees');
    assert.deepEqual(seen, [1], 'the scan event fired for the review to follow');
  });

  it('the bounded shutdown (deactivate) mid-command syncs the guest and stops the VM; what was written survives', { timeout: 300_000 }, async () => {
    const m = managers.at(-1)!;
    const task = m.get(m.list()[0]!.id)!;
    const disk = task.vm.sessionDisk;
    assert.equal(pgrep(`qemu-system.*${disk}`).length, 1, 'the VM runs');
    // written without sync right before the window closes: the shutdown's guest sync must keep it
    model.play(say(toolUse('bash', { command: 'printf "late write\\n" > late.txt; echo late-written; sleep 120' })));
    const seen = new Promise<void>((resolve) => task.on('live', (e) => e.type === 'tool_output' && e.chunk.includes('late-written') && resolve()));
    const done = m.send(task, 'write late.txt');
    await seen;
    const started = Date.now();
    const { inTime } = await shutdownWithin(SHUTDOWN_MS, [() => m.shutdown()]);
    assert.ok(inTime, `the tasks shut down within ${SHUTDOWN_MS} ms (took ${Date.now() - started} ms)`);
    assert.equal(await done, 'stopped');
    await until('QEMU to exit after the shutdown', () => pgrep(`qemu-system.*${disk}`).length === 0, 20_000);

    const reloaded = await load();
    const again = reloaded.get(task.info.id)!;
    const cs = await readChangeSet(await again.guest());
    const late = cs.changes.find((c) => c.display === 'late.txt');
    assert.ok(late, `late.txt survived the shutdown: ${cs.changes.map((c) => c.display).join(', ')}`);
    assert.equal(late.sha256, createHash('sha256').update('late write\n').digest('hex'));
  });
});
