// The warm VM (cowork.vm.warm, extension/session/warmVm.ts) with real guests, through the session
// layer the extension uses (TaskManager + WarmVm + the bundled helper): a task adopts the VM booted
// ahead (the same QEMU process that was ready before Delegate) and sees the workspace; the next
// task gets a fresh VM that shows nothing of the first task's files or processes; a settings
// change that shapes the VM discards the warm one and the task boots as before (so does a change of
// cowork.network.extraCaCertificates, whose sandbox started ahead has them bound); Stop VM stops it
// until a task's turn has run; it counts toward cowork.maxParallelTasks with the tasks' VMs;
// turning the setting off stops it, and neither that, nor closing the window, nor the helper's
// death leaves a QEMU behind.
import assert from 'node:assert/strict';
import { access, mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readChangeSet } from '../../extension/changes/changeSet';
import { SettingsSchema, type Settings } from '../../extension/config/settings';
import type { Task } from '../../extension/session/task';
import { TaskManager } from '../../extension/session/taskManager';
import { VmHelper } from '../../extension/session/vmHelper';
import { WarmVm } from '../../extension/session/warmVm';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { HELPER, isAlive, tempDir, testAccelerator } from './harness';
import { pgrep, until } from '../support/wait';

const API_KEY = 'sk-ant-api03-warm-vm-test-key-0123456789';
// the host's CA bundle, as the other VM tests find it (the extra CA test below only needs a valid file)
const HOST_CA_BUNDLE = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
/** the engine's recent log lines, shown when a wait fails (a warm boot that failed says why there) */
const recent: string[] = [];
const keep = (m: string): void => {
  recent.push(`${new Date().toISOString()} ${m}`);
  if (recent.length > 60) recent.shift();
  if (process.env.COWORK_TEST_VERBOSE) console.error(m);
};
const log = { trace() {}, debug() {}, info: keep, warn: keep, error: keep };
/** a warm boot under TCG takes ~10 s here; a loaded CI host several times that */
const BOOT_WAIT_MS = 240_000;
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let storageDir: string;
let model: ScriptedModel;
let helper: VmHelper;
let settings: Settings;
let warm: WarmVm;
let manager: TaskManager;

async function qemuPid(vmId: string): Promise<number | undefined> {
  const { vms } = await helper.get().request('vm.list', {});
  return vms.find((v) => v.vmId === vmId)?.pid;
}

/** The ready warm VM's id and QEMU pid (waits for its boot). */
async function readyWarm(): Promise<{ vmId: string; pid: number }> {
  await until('the warm VM to be ready', () => warm.state === 'ready', BOOT_WAIT_MS).catch((err: Error) => {
    throw new Error(`${err.message} (warm VM state: ${warm.state}); the engine's last log lines:\n${recent.join('\n')}`);
  });
  const vmId = warm.vmId!;
  const pid = await qemuPid(vmId);
  assert.ok(pid && isAlive(pid), `the warm VM ${vmId} has a running QEMU`);
  return { vmId, pid };
}

/** Every tool result of a task's transcript, joined. */
function toolResults(task: Task): string {
  return task.transcript.all.flatMap((e) => (e.type === 'tool_result' ? [String(e.content)] : [])).join('\n');
}

before(
  async () => {
    root = await tempDir('warm-vm');
    ws = path.join(root.dir, 'ws');
    storageDir = path.join(root.dir, 'storage');
    await mkdir(ws);
    await writeFile(path.join(ws, 'README.md'), '# warm project\n');
    model = new ScriptedModel();
    const baseURL = await model.start();
    helper = new VmHelper({ helperPath: HELPER, log: quiet });
    settings = SettingsSchema.parse({ apiBaseUrl: baseURL, 'vm.accelerator': testAccelerator(), 'vm.cpus': 2, 'vm.memoryMiB': 1024, 'vm.diskGiB': 4, 'vm.idleStopMinutes': 0, 'vm.warm': true });
    warm = new WarmVm({ helper, workspace: ws, storageDir, log, settings: () => settings, onBattery: () => Promise.resolve(false) });
    manager = await TaskManager.load({ helper, workspace: ws, storageDir, log, apiKey: () => Promise.resolve(API_KEY), settings: () => settings, warm });
  },
  { timeout: 30_000 },
);

after(
  async () => {
    await manager?.dispose();
    await helper?.dispose();
    await model?.close();
    await until('every process of this test to exit', () => pgrep(`${root.dir}/`).length === 0, 20_000);
    await root?.dispose();
  },
  { timeout: 60_000 },
);

describe('the warm VM with real guests', { timeout: 1_200_000 }, () => {
  let first: { task: Task; pid: number };

  it('a task adopts the warm VM: the VM was ready before Delegate, no boot follows, and the task sees the workspace', { timeout: 400_000 }, async () => {
    assert.equal(warm.state === 'off', false, 'loading the tasks started a warm VM');
    const { vmId, pid } = await readyWarm();
    // the first task leaves a file in /workspace, one in the guest's /tmp and a process behind
    model.play(say(toolUse('bash', { command: 'cat /workspace/README.md; echo left-by-first > /workspace/first.txt; echo tmp-by-first > /tmp/first-tmp.txt; (setsid sleep 617 </dev/null >/dev/null 2>&1 &); echo first-ran' })), say(text('Done.')));
    const delegatedAt = Date.now();
    let firstOutputAt = 0;
    const { task, done } = await manager.create('read the README');
    task.on('live', (e) => e.type === 'tool_output' && !firstOutputAt && (firstOutputAt = Date.now()));
    assert.equal(task.vm.vmId, vmId, 'the new task got the warm VM\'s id');
    assert.equal(await done, 'done');
    assert.equal(await qemuPid(vmId), pid, 'the task runs on the QEMU process that was ready before Delegate (no boot)');
    const out = toolResults(task);
    assert.match(out, /# warm project/, 'the task sees the workspace through its share');
    assert.match(out, /first-ran/);
    assert.equal(warm.state === 'ready' && warm.vmId === vmId, false, 'the adopted VM is no longer the warm one');
    console.log(`# Delegate -> first command output with the warm VM: ${firstOutputAt - delegatedAt} ms`);
    first = { task, pid };
  });

  it('a second task gets a fresh VM with none of the first task\'s files or processes', { timeout: 400_000 }, async () => {
    // the replacement boots once the first task's turn has ended
    const { vmId, pid } = await readyWarm();
    assert.notEqual(vmId, first.task.vm.vmId);
    assert.notEqual(pid, first.pid, 'another QEMU process');
    model.play(say(toolUse('bash', { command: 'ls -a /workspace; test -e /workspace/first.txt && echo SAW-FIRST-FILE; test -e /tmp/first-tmp.txt && echo SAW-FIRST-TMP; echo second-ran' })), say(text('Done.')));
    const { task, done } = await manager.create('look around');
    assert.equal(task.vm.vmId, vmId);
    assert.equal(await done, 'done');
    const out = toolResults(task);
    assert.match(out, /second-ran/);
    assert.match(out, /README\.md/, 'the workspace is there');
    assert.doesNotMatch(out, /SAW-FIRST/, 'nothing of the first task');
    // as root in the second VM: its overlay holds no change and no process of the first task runs
    const guest = await task.guest();
    assert.deepEqual((await readChangeSet(guest)).changes.map((c) => c.display), [], 'the second task\'s overlay is clean');
    const ps = await guest.exec(['ps', '-eo', 'args'], { timeoutMs: 20_000 });
    assert.doesNotMatch(ps.stdout.toString(), /sleep 617/, 'the first task\'s process is not in the second VM');
    // and the first task's VM still has its own file (the check above could not pass by losing it)
    const firstGuest = await first.task.guest();
    assert.deepEqual((await readChangeSet(firstGuest)).changes.map((c) => c.display), ['first.txt']);
    // two idle task VMs would only slow the rest of this file down
    await Promise.all([first.task.vm.stop(), task.vm.stop()]);
  });

  it('a change of a setting that shapes the VM discards the warm VM and the task boots as before', { timeout: 400_000 }, async () => {
    const { vmId, pid } = await readyWarm();
    settings = { ...settings, 'vm.diskGiB': 5 };
    model.play(say(toolUse('bash', { command: 'echo booted-anew' })), say(text('Done.')));
    const { task, done } = await manager.create('run after a settings change');
    assert.equal(task.vm.vmId, vmId, 'the task was promised the warm VM\'s id');
    assert.equal(await done, 'done');
    assert.match(toolResults(task), /booted-anew/);
    const now = await qemuPid(vmId);
    assert.ok(now && now !== pid, `the task runs on a QEMU of its own boot (${now}), not the warm one (${pid})`);
    await until('the discarded warm QEMU to exit', () => !isAlive(pid), 20_000);
    settings = { ...settings, 'vm.diskGiB': 4 };
    await task.vm.stop();
  });

  it('Stop VM stops the warm VM, and none boots again until a task\'s turn has run', { timeout: 400_000 }, async () => {
    const { vmId, pid } = await readyWarm();
    await manager.stopWarm('Stop VM');
    await until('the warm QEMU to exit after Stop VM', () => !isAlive(pid), 20_000);
    assert.equal(await qemuPid(vmId), undefined, 'the helper no longer lists it');
    await until('its session disk to be removed', () => access(path.join(storageDir, 'sessions', `${vmId}.qcow2`)).then(() => false, () => true), 10_000);
    // what boots one otherwise: the manager's balance with no turn running, a settings change
    manager.settingsChanged();
    await manager.balanceWarm();
    assert.equal(warm.state, 'off', 'no warm VM boots after Stop VM while no task has run');
    // the next task boots its own VM; the end of its turn boots the warm VM again
    model.play(say(toolUse('bash', { command: 'echo after-stop' })), say(text('Done.')));
    const { task, done } = await manager.create('run after Stop VM');
    assert.notEqual(task.vm.vmId, vmId);
    assert.equal(await done, 'done');
    assert.match(toolResults(task), /after-stop/);
    const next = await readyWarm();
    assert.notEqual(next.vmId, task.vm.vmId);
    await task.vm.stop();
  });

  it('cowork.network.extraCaCertificates: a warm VM booted without them does not fit; the next one is booted with them and its sandbox, started ahead, has them', { timeout: 600_000 }, async () => {
    const caCommand = 'echo "ca=$SSL_CERT_FILE"; grep -c "BEGIN CERTIFICATE" /run/cowork/ca/extra.pem';
    const { vmId, pid } = await readyWarm();
    settings = { ...settings, 'network.extraCaCertificates': [HOST_CA_BUNDLE] };
    model.play(say(toolUse('bash', { command: caCommand })), say(text('Done.')));
    const { task, done } = await manager.create('with the extra CA certificates');
    assert.equal(task.vm.vmId, vmId, "the task was promised the warm VM's id");
    assert.equal(await done, 'done');
    assert.match(toolResults(task), /ca=\/run\/cowork\/ca\/bundle\.pem\n[1-9]\d*\b/);
    const now = await qemuPid(vmId);
    assert.ok(now && now !== pid, `the task runs on a QEMU of its own boot (${now}), not the warm one booted without the certificates (${pid})`);
    await until('the discarded warm QEMU to exit', () => !isAlive(pid), 20_000);
    await task.vm.stop();
    // the end of that turn booted the next warm VM with the setting: its sandbox binds them from the start
    const next = await readyWarm();
    model.play(say(toolUse('bash', { command: caCommand })), say(text('Done.')));
    const second = await manager.create('again with the extra CA certificates');
    assert.equal(second.task.vm.vmId, next.vmId);
    assert.equal(await second.done, 'done');
    assert.equal(await qemuPid(next.vmId), next.pid, 'the task adopted the warm VM booted with the certificates');
    assert.match(toolResults(second.task), /ca=\/run\/cowork\/ca\/bundle\.pem\n[1-9]\d*\b/);
    // the next tests start from a warm VM booted without them: this one goes, and stopping the task's VM boots that one
    settings = { ...settings, 'network.extraCaCertificates': [] };
    await warm.discard('the test reset cowork.network.extraCaCertificates');
    await second.task.vm.stop();
  });

  it('the warm VM counts toward cowork.maxParallelTasks: none while the tasks\' VMs fill it, one when a task VM stops, and a task VM booting past it stops the warm one', { timeout: 400_000 }, async () => {
    await readyWarm();
    settings = { ...settings, maxParallelTasks: 1 };
    model.play(say(toolUse('bash', { command: 'echo one-slot' })), say(text('Done.')));
    const { task, done } = await manager.create('run with one slot');
    assert.equal(await done, 'done');
    assert.equal(task.vm.current.state, 'ready', 'the task\'s VM stays up after its turn (idle stop is off here)');
    await manager.balanceWarm();
    assert.equal(warm.state, 'off', 'no warm VM beside a task VM when cowork.maxParallelTasks is 1');
    // the task's VM stops: there is room for the warm VM again
    await task.vm.stop();
    const w = await readyWarm();
    // a follow-up boots the task's VM again, past the limit: the warm VM goes (the task does not wait for it)
    model.play(say(toolUse('bash', { command: 'echo follow-up-ran' })), say(text('Done.')));
    const outcome = manager.send(task, 'once more');
    await until('the warm VM to stop when a task VM boots past cowork.maxParallelTasks', () => warm.state === 'off' && !isAlive(w.pid), 120_000);
    assert.equal(await outcome, 'done');
    assert.match(toolResults(task), /follow-up-ran/);
    await manager.balanceWarm();
    assert.equal(warm.state, 'off', 'still none after the follow-up: the task VM fills the limit');
    settings = { ...settings, maxParallelTasks: 2 };
    await task.vm.stop();
  });

  it('turning the setting off stops the warm VM; closing the window leaves no QEMU behind', { timeout: 400_000 }, async () => {
    let { vmId, pid } = await readyWarm();
    settings = { ...settings, 'vm.warm': false };
    manager.settingsChanged();
    await until('the warm VM to stop after the setting was turned off', () => warm.state === 'off' && !isAlive(pid), 20_000);
    assert.equal(await qemuPid(vmId), undefined, 'the helper no longer lists it');
    await until('its session disk to be removed', () => access(path.join(storageDir, 'sessions', `${vmId}.qcow2`)).then(() => false, () => true), 10_000);
    assert.equal(await warm.fill().then(() => warm.state), 'off', 'no warm VM while the setting is off');

    settings = { ...settings, 'vm.warm': true };
    manager.settingsChanged();
    ({ vmId, pid } = await readyWarm());
    const disk = path.join(storageDir, 'sessions', `${vmId}.qcow2`);
    await manager.dispose(); // the window closes
    await until('the warm QEMU to exit with the window', () => !isAlive(pid) && pgrep(`qemu-system.*${disk}`).length === 0, 20_000);
    await until('its session disk to be removed', () => access(disk).then(() => false, () => true), 10_000);
  });

  it('the helper dying takes the warm VM with it: its watchdog kills the QEMU, and the warm VM is forgotten', { timeout: 400_000 }, async () => {
    // a new window on the same workspace
    warm = new WarmVm({ helper, workspace: ws, storageDir, log, settings: () => settings, onBattery: () => Promise.resolve(false) });
    manager = await TaskManager.load({ helper, workspace: ws, storageDir, log, apiKey: () => Promise.resolve(API_KEY), settings: () => settings, warm });
    const { vmId, pid } = await readyWarm();
    const helperPid = helper.get().pid!;
    process.kill(helperPid, 'SIGKILL');
    await until('the watchdog to kill the warm QEMU after the helper died', () => !isAlive(pid), 20_000);
    await until('the warm VM to be forgotten', () => warm.state === 'off', 10_000);
    await until('its session disk to be removed', () => access(path.join(storageDir, 'sessions', `${vmId}.qcow2`)).then(() => false, () => true), 10_000);
  });
});
