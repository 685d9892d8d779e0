// The tasks of one workspace: created from a prompt, listed (tasks/index.json in the workspace's
// extension storage, plus each task's own tasks/<id>/task.json, so an unreadable index is rebuilt
// from the task folders instead of losing the list), and run at most cowork.maxParallelTasks at a
// time (the rest wait, shown as queued; a queued task can be stopped, and a follow-up to it is
// refused with a message). It also decides when the warm VM (warmVm.ts) boots and when it goes.
// State files are written through extension/state (atomic).
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readdir, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { TurnOutcome } from '../agent/loop';
import { ignoreProblems, readJsonState, writeJsonAtomic } from '../state/stateFiles';
import type { PromptImage } from '../protocol/transcript';
import { QUEUED_REFUSAL, Task, type TaskDeps, type TaskInfo } from './task';
import type { WarmVm } from './warmVm';

const Info = z.object({ id: z.string().regex(/^[a-z0-9]{6,32}$/), title: z.string(), createdAt: z.number(), mode: z.enum(['review', 'direct']).default('review'), model: z.string().min(1).max(200).optional() });
const Index = z.array(Info);

/** What a send can end with: the turn's outcome, or refused (a follow-up to a queued task). */
export type SendOutcome = TurnOutcome | 'refused';

export class TaskManager extends EventEmitter<{ changed: []; refused: [taskId: string, message: string] }> {
  private readonly tasks = new Map<string, Task>();
  /** queued tasks' grants, in order: each returns whether it took the slot (false: stopped meanwhile) */
  private readonly waiting: (() => boolean)[] = [];
  private active = 0;
  /** each task's VM state listener (the warm VM's balance: balanceWarm) */
  private readonly vmWatch = new Map<string, { dispose(): void }>();
  /** cowork.vm.warm as last seen by settingsChanged (off → on lifts a Stop VM hold) */
  private warmSetting: boolean | undefined;

  private constructor(private readonly deps: TaskDeps) {
    super();
  }

  static async load(deps: TaskDeps): Promise<TaskManager> {
    const m = new TaskManager(deps);
    const report = deps.report ?? ignoreProblems;
    let saved = await readJsonState(m.indexFile, (v) => Index.parse(v), report);
    if (!saved) saved = await m.recoverIndex();
    for (const info of saved) {
      // tasks from before task.json existed get one, so a later rebuild finds them too
      const own = path.join(m.tasksDir, info.id, 'task.json');
      if (!(await stat(own).catch(() => undefined))) await writeJsonAtomic(own, info, { pretty: true }).catch(() => undefined);
      m.adopt(await Task.open(info, deps));
    }
    m.warmUp();
    return m;
  }

  private get tasksDir(): string {
    return path.join(this.deps.storageDir, 'tasks');
  }

  private get indexFile(): string {
    return path.join(this.tasksDir, 'index.json');
  }

  /** No index (or an unreadable one, moved aside): the task folders' own task.json files list the tasks. */
  private async recoverIndex(): Promise<z.infer<typeof Index>> {
    const names = await readdir(this.tasksDir).catch(() => [] as string[]);
    const found: z.infer<typeof Index> = [];
    for (const name of names) {
      if (!/^[a-z0-9]{6,32}$/.test(name)) continue;
      const info = await readJsonState(path.join(this.tasksDir, name, 'task.json'), (v) => Info.parse(v), this.deps.report ?? ignoreProblems);
      if (info && info.id === name) found.push(info);
    }
    if (found.length) {
      this.deps.log.warn(`[agent] the task list was rebuilt from ${found.length} task folder(s)`);
      await writeJsonAtomic(this.indexFile, found, { pretty: true }).catch((err: unknown) => this.deps.log.warn(`[agent] cannot save the rebuilt task list: ${String(err)}`));
    }
    return found;
  }

  list(): TaskInfo[] {
    return [...this.tasks.values()].map((t) => ({ ...t.info, state: t.state })).sort((a, b) => b.createdAt - a.createdAt);
  }

  get(id: string): Task | undefined {
    return this.tasks.get(id);
  }

  private adopt(task: Task): void {
    this.tasks.set(task.info.id, task);
    task.on('state', () => this.emit('changed'));
    // a task's VM that boots may leave no room for the warm VM; one that stops may make room. Only a
    // stop boots one: a task VM booting outside a turn (Restart, a review after a reload) is not
    // joined by a second boot on the same cores.
    this.vmWatch.set(task.info.id, task.vm.onStatus((s) => void this.balanceWarm({ boot: s.state === 'stopped' || s.state === 'failed' })));
  }

  private async save(): Promise<void> {
    await writeJsonAtomic(this.indexFile, [...this.tasks.values()].map((t) => t.info), { pretty: true });
  }

  /** Creates a task and starts it (or queues it when cowork.maxParallelTasks are running). */
  async create(prompt: string, opts: { readonly model?: string; readonly images?: readonly PromptImage[] } = {}): Promise<{ task: Task; done: Promise<SendOutcome> }> {
    const title = prompt.trim().split('\n')[0]!.slice(0, 80) || 'Untitled task';
    // read before the warm VM is claimed: a settings error (a cowork.network.extraCaCertificates
    // file removed since the panel checked) must not leave it claimed by no task
    const mode = this.deps.settings()['workspace.mode'];
    // the warm VM was booted under the id of the next task: this one (it adopts the VM at its start)
    const warmId = this.deps.warm?.claimId();
    const info = { id: warmId ?? randomBytes(6).toString('hex'), title, createdAt: Date.now(), mode, ...(opts.model ? { model: opts.model } : {}) };
    let task: Task | undefined;
    try {
      await writeJsonAtomic(path.join(this.tasksDir, info.id, 'task.json'), info, { pretty: true });
      task = await Task.open(info, this.deps);
      this.adopt(task);
      await this.save();
    } catch (err) {
      if (task) {
        // the task exists (only the list could not be saved) and the id is its own: no turn of
        // this create will adopt the VM, so it stops (WarmVm.forgo: why not back to the pool)
        await this.forgoWarm(task);
      } else if (warmId) {
        // no task got the id: its folder goes, the VM goes back to the pool for the next task
        await rm(path.join(this.tasksDir, info.id), { recursive: true, force: true }).catch(() => undefined);
        this.deps.warm?.unclaim(warmId);
        void this.balanceWarm({ boot: false });
      }
      throw err;
    }
    this.emit('changed');
    return { task, done: this.send(task, prompt, opts.images) };
  }

  /** A follow-up (or the first prompt), respecting the parallel limit. A follow-up to a queued task is refused. */
  async send(task: Task, text: string, images?: readonly PromptImage[]): Promise<SendOutcome> {
    if (task.isQueued) {
      this.emit('refused', task.info.id, QUEUED_REFUSAL);
      return 'refused';
    }
    let max: number;
    try {
      max = this.deps.settings().maxParallelTasks;
    } catch (err) {
      await this.forgoWarm(task);
      throw err;
    }
    if (this.active >= max) {
      const go = await task.waitForSlot(text, (grant) => this.waiting.push(grant));
      if (!go) {
        await this.forgoWarm(task);
        return 'stopped';
      }
    } else {
      this.active++;
    }
    // a turn starts: the warm VM may boot again once turns end (after Stop VM held it off)
    this.deps.warm?.resume();
    // the slot is ours (taken above, or handed over by release())
    try {
      return await task.send(text, images);
    } finally {
      // before release(), whose warmUp then boots a fresh warm VM in its place
      await this.forgoWarm(task);
      this.release();
      this.emit('changed');
    }
  }

  /**
   * The turn (or the queued wait) that claimed the warm VM ended without adopting it (no API key,
   * a start that failed before the adoption, stopped while queued): the VM stops. Counting it in
   * taskVmsUp instead was the other choice, but such a VM would then stay up, claimed, until the
   * task's next turn (no idle stop applies to it: the task's VM never started), holding a VM's
   * memory for nothing; and it cannot go back to the pool, as its id is that task's (WarmVm.forgo).
   * So a claim lasts no longer than the turn that made it, and taskVmsUp need not count it.
   */
  private async forgoWarm(task: Task): Promise<void> {
    await this.deps.warm?.forgo(task.info.id).catch((err: unknown) => this.deps.log.warn(`[vm] warm VM: ${String(err)}`));
  }

  /** Hands the slot to the next queued task that is still waiting, or frees it. */
  private release(): void {
    for (let grant = this.waiting.shift(); grant; grant = this.waiting.shift()) if (grant()) return;
    this.active--;
    this.warmUp();
  }

  /**
   * Boots the warm VM (cowork.vm.warm) when no turn is running: at load, and when the last running
   * turn ends (after a task adopted the previous one). Not during a turn: on a 2-core host without
   * hardware acceleration a boot takes both cores for seconds, and the agent's commands (or another
   * task's boot) would wait for it; after a turn the person reads and reviews, and the CPU is idle.
   */
  private warmUp(): void {
    void this.balanceWarm();
  }

  /**
   * The task VMs that are up (booting, ready or stopping: each holds a VM's memory). A task that is
   * adopting the warm VM counts once: the warm VM it was promised is left alone (balanceWarm). A
   * claimed warm VM whose task's VM is not up is not counted: the claim ends with the claiming turn
   * (forgoWarm), so it cannot outlast a turn that did not adopt it.
   */
  private taskVmsUp(): number {
    let n = 0;
    for (const t of this.tasks.values()) {
      const s = t.vm.current.state;
      if (s === 'booting' || s === 'ready' || s === 'stopping') n++;
    }
    return n;
  }

  /**
   * Whether the warm VM may be kept (or booted): it counts toward cowork.maxParallelTasks with the
   * tasks' VMs that are up. The person bounds Cowork's memory with that setting, and the warm VM is
   * only the next task's VM booted early: when the tasks' VMs fill the limit there is no room for
   * it. It never makes a task wait: a task that starts takes it (or boots its own VM, never queued
   * behind it), and a task VM that boots past the limit stops it (balanceWarm).
   */
  static warmFits(taskVmsUp: number, maxParallelTasks: number): boolean {
    return taskVmsUp < maxParallelTasks;
  }

  /**
   * Boots the warm VM when no turn runs and it fits (warmFits), or stops it when it no longer fits
   * (a task's VM booted for a follow-up, with the limit already reached). A warm VM promised to a
   * task is that task's VM and is left alone. Resolves when a boot it started is settled, so
   * callers (and tests) see the decision's result. boot: false only stops, never boots.
   */
  async balanceWarm(opts: { readonly boot?: boolean } = {}): Promise<void> {
    const warm = this.deps.warm;
    if (!warm) return;
    let max: number;
    try {
      max = this.deps.settings().maxParallelTasks;
    } catch {
      return; // invalid settings: nothing starts until they are fixed (the glue says so)
    }
    const up = this.taskVmsUp();
    const fits = TaskManager.warmFits(up, max);
    try {
      if (!fits && warm.state !== 'off' && !warm.claimed) await warm.discard(`the tasks' VMs (${up}) fill cowork.maxParallelTasks (${max})`);
      else if (fits && this.active === 0 && opts.boot !== false) {
        await warm.fill();
        // one failed boot can be passing (a loaded host): try once more while still idle, rather
        // than leave the next task a cold boot; fill() gives up at WARM_MAX_FAILURES in a row
        if (warm.state === 'off' && warm.failedBoots > 0 && this.active === 0) await warm.fill();
      }
    } catch (err) {
      this.deps.log.warn(`[vm] warm VM: ${String(err)}`);
    }
  }

  /** Stop VM: the warm VM stops and stays off until a task's turn starts (WarmVm.stop: why). */
  async stopWarm(reason: string): Promise<void> {
    await this.deps.warm?.stop(reason);
  }

  /** The window's warm VM, if the glue made one. */
  get warm(): WarmVm | undefined {
    return this.deps.warm;
  }

  /** The cowork.* settings changed: turning cowork.vm.warm off stops the warm VM, turning it on boots one. */
  settingsChanged(): void {
    const warm = this.deps.warm;
    if (!warm) return;
    let on: boolean;
    try {
      on = this.deps.settings()['vm.warm'];
    } catch {
      return; // invalid settings: nothing starts until they are fixed (the glue says so)
    }
    // turning the setting on again is an explicit wish for a warm VM, also after Stop VM
    if (on && this.warmSetting === false) warm.resume();
    this.warmSetting = on;
    if (on) this.warmUp();
    else warm.discard('cowork.vm.warm was turned off').catch((err: unknown) => this.deps.log.warn(`[vm] warm VM: ${String(err)}`));
  }

  /** Allocated bytes of each task's session disk (sparse qcow2: what it really takes). */
  async diskUsage(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const t of this.tasks.values()) out.set(t.info.id, await allocated(t.vm.sessionDisk));
    return out;
  }

  /** Deletes a task that is not running: its VM, session disk (and so its pending changes), transcript and records. */
  async delete(id: string): Promise<{ freedBytes: number }> {
    const task = this.tasks.get(id);
    if (!task) throw new Error(`No task ${id}.`);
    if (task.isRunning || task.isQueued) throw new Error(`"${task.info.title}" is running; stop it first.`);
    const freedBytes = (await allocated(task.vm.sessionDisk)) + (await sizeOfTree(task.storageDir));
    await this.deps.warm?.release(id);
    this.vmWatch.get(id)?.dispose();
    this.vmWatch.delete(id);
    await task.dispose();
    this.tasks.delete(id);
    await this.save();
    await rm(task.vm.sessionDisk, { force: true });
    await rm(task.vm.egressLog, { force: true });
    await rm(task.storageDir, { recursive: true, force: true });
    this.emit('changed');
    return { freedBytes };
  }

  /**
   * Removes session disks in this workspace's storage that belong to no task of this workspace
   * (left by a deleted task or an interrupted create). Never a running task's, never another
   * workspace's (those live in that workspace's own storage).
   */
  async removeOrphanDisks(): Promise<{ removed: string[]; freedBytes: number }> {
    const dir = path.join(this.deps.storageDir, 'sessions');
    // Clean Up stops the warm VM too (the next turn's end boots another)
    await this.deps.warm?.discard('Clean Up');
    const known = new Set([...this.tasks.values()].map((t) => path.basename(t.vm.sessionDisk)));
    const warmDisk = this.deps.warm?.sessionDiskName;
    if (warmDisk) known.add(warmDisk);
    const removed: string[] = [];
    let freedBytes = 0;
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!/^task-[a-z0-9]+\.qcow2$/.test(name) || known.has(name)) continue;
      const file = path.join(dir, name);
      freedBytes += await allocated(file);
      await rm(file, { force: true });
      removed.push(name);
    }
    return { removed, freedBytes };
  }

  /** deactivate: every task's turn aborted, its guest synced and its VM stopped, in parallel. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...[...this.tasks.values()].map((t) => t.shutdown()), this.deps.warm?.dispose()]);
  }

  async dispose(): Promise<void> {
    for (const w of this.vmWatch.values()) w.dispose();
    this.vmWatch.clear();
    await Promise.allSettled([...[...this.tasks.values()].map((t) => t.dispose()), this.deps.warm?.dispose()]);
    this.removeAllListeners();
  }
}

async function allocated(file: string): Promise<number> {
  const st = await stat(file).catch(() => undefined);
  return st ? st.blocks * 512 : 0;
}

async function sizeOfTree(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? await sizeOfTree(p) : await allocated(p);
  }
  return total;
}
