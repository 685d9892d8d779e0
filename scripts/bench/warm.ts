// Issue 14 figure start.warm.ms: Delegate → the first command running, when a warm VM is ready
// (cowork.vm.warm), and the same without one (start.cold.ms) next to it. Both go through the
// extension's session layer (TaskManager.create → Task.send → WorkspaceVm.start → the agent loop)
// with the bundled helper, a real guest and the scripted model on loopback; "running" is the first
// tool_output event of a command that prints at once (what the panel shows first). Runs alternate
// warm and cold so that both see the same host load; the first run also pays the agent loop's
// lazy import (@anthropic-ai/sdk), as the first Delegate of a window does.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { SettingsSchema, type Settings } from '../../extension/config/settings';
import { TaskManager } from '../../extension/session/taskManager';
import { VmHelper } from '../../extension/session/vmHelper';
import { WarmVm } from '../../extension/session/warmVm';
import { say, ScriptedModel, text, toolUse } from '../../test/support/scriptedModel';
import { benchAccelerator, figure, fmtMs, median, printTable, saveFigures, setAccelerator, wants, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const RUNS = Number(process.env.BENCH_WARM_RUNS ?? 3);
const BOOT_WAIT_MS = 300_000;
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<void> {
  if (!wants('start.')) return;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-warm-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  await writeFile(path.join(ws, 'README.md'), '# bench\n');
  const model = new ScriptedModel();
  const baseURL = await model.start();
  const helper = new VmHelper({ helperPath: path.join(ROOT, 'dist', 'vm-host.js'), log: quiet });
  let settings: Settings = SettingsSchema.parse({ apiBaseUrl: baseURL, 'vm.accelerator': benchAccelerator(), 'vm.cpus': Math.min(2, os.cpus().length), 'vm.memoryMiB': 1024, 'vm.diskGiB': 2, 'vm.idleStopMinutes': 0, maxParallelTasks: 4 });
  const warm = new WarmVm({ helper, workspace: ws, storageDir: path.join(tmp, 'storage'), log: quiet, settings: () => settings, onBattery: () => Promise.resolve(false) });
  const manager = await TaskManager.load({ helper, workspace: ws, storageDir: path.join(tmp, 'storage'), log: quiet, apiKey: () => Promise.resolve('sk-bench'), settings: () => settings, warm });
  const rows: Row[] = [];
  const runs: Record<'warm' | 'cold', number[]> = { warm: [], cold: [] };
  try {
    /** Delegate → first output of the first command, ms; the task's VM is stopped afterwards. */
    const delegate = async (kind: 'warm' | 'cold'): Promise<number> => {
      settings = { ...settings, 'vm.warm': kind === 'warm' };
      manager.settingsChanged();
      if (kind === 'warm') await until('the warm VM to be ready', () => warm.state === 'ready', BOOT_WAIT_MS);
      else await until('the warm VM to be gone', () => warm.state === 'off', 30_000);
      model.play(say(toolUse('bash', { command: 'echo started' })), say(text('done')));
      const t0 = performance.now();
      let firstOutput: number | undefined;
      const { task, done } = await manager.create(`${kind} start`);
      const marks: string[] = [];
      const mark = (what: string): number => marks.push(`${what} ${Math.round(performance.now() - t0)}`);
      task.on('state', (s) => mark(s));
      task.on('live', (e) => {
        if (e.type === 'tool_start') mark('tool_start');
        if (e.type === 'tool_output' && firstOutput === undefined) firstOutput = performance.now() - t0;
      });
      const outcome = await done;
      if (outcome !== 'done' || firstOutput === undefined) throw new Error(`the ${kind} task ended ${outcome} without output: ${JSON.stringify(task.transcript.all.at(-1))}`);
      setAccelerator(task.vm.current.accelerator ?? benchAccelerator());
      console.log(`${kind}: ${marks.join(', ')}, first output ${Math.round(firstOutput)} ms`);
      await task.vm.stop();
      return firstOutput;
    };
    for (let i = 0; i < RUNS; i++) {
      runs.warm.push(await delegate('warm'));
      runs.cold.push(await delegate('cold'));
    }
    const [w, c] = [median(runs.warm), median(runs.cold)];
    figure('start.warm.ms', w, 'ms', `Delegate → first command running, with a warm VM ready (median of ${RUNS})`, 1000);
    figure('start.cold.ms', c, 'ms', `Delegate → first command running, without a warm VM: boot included (median of ${RUNS})`);
    rows.push({ what: 'Delegate → first command, warm VM', value: fmtMs(w), note: `runs: ${runs.warm.map((x) => fmtMs(x)).join(', ')}; goal ≤ 1.0 s` });
    rows.push({ what: 'Delegate → first command, cold (boot)', value: fmtMs(c), note: `runs: ${runs.cold.map((x) => fmtMs(x)).join(', ')}` });
    rows.push({ what: 'cold / warm', value: `${(c / w).toFixed(1)}×` });
  } finally {
    await manager.dispose();
    await helper.dispose();
    await model.close();
    await rm(tmp, { recursive: true, force: true });
  }
  printTable(`Warm VM (${new Date().toISOString()})`, rows);
  saveFigures();
}

main().catch((err: unknown) => {
  console.error(err);
  saveFigures();
  process.exit(1);
});
