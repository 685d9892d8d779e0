// A task: the person's prompt, its own VM (lease + overlay on its session disk + egress proxy with
// its own audit log), its transcript, and the agent loop that works on it. vscode-free; the glue
// passes the API key getter, settings and a logger in.
import type { PromptImage } from '../protocol/transcript';
import type { GuestLayerSpec } from '../protocol/vmHost';
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import type { LiveEvent, TurnOutcome } from '../agent/loop';
import { systemPrompt } from '../agent/systemPrompt';
import { TranscriptStore } from '../agent/transcript';
import { SET_KEY_ACTION } from '../agent/actions';
import type { Settings } from '../config/settings';
import type { Change } from '../changes/changeSet';
import type { GuestVm } from '../guest/guestVm';
import { VmHostRequestError } from '../guest/vmHostClient';
import { ignoreProblems, readJsonState, writeJsonAtomic, type StateReporter } from '../state/stateFiles';
import { LastScan, type PersistedScan } from './lastScan';
import type { VmHelper } from './vmHelper';
import type { WarmVm } from './warmVm';
import { WorkspaceVm, type Logger } from './workspaceVm';

export type TaskState = 'queued' | 'booting' | 'running' | 'idle' | 'failed' | 'stopped';

export interface TaskInfo {
  readonly id: string;
  readonly title: string;
  readonly createdAt: number;
  /** fixed when the task is created: switching the setting never turns pending changes into applied ones */
  readonly mode: 'review' | 'direct';
  /** the model picked when it was created (the panel's picker); follow-ups keep it. Unset: cowork.model */
  readonly model?: string;
  readonly state: TaskState;
}

export interface TaskDeps {
  readonly helper: VmHelper;
  readonly workspace: string;
  readonly storageDir: string;
  readonly log: Logger;
  readonly apiKey: () => Promise<string | undefined>;
  readonly settings: () => Settings;
  /** the guest layer each VM start boots (consent asked in the glue) and the workspace's cache disk */
  readonly guestLayer?: () => Promise<GuestLayerSpec | undefined>;
  readonly cacheDisk?: string;
  /** the window's warm VM (cowork.vm.warm), made by the glue; none in tests unless a test is about it */
  readonly warm?: WarmVm;
  /** a state file that was unreadable (moved aside) or could not be written */
  readonly report?: StateReporter;
}

/** The transcript's words for a VM that went away by itself; a follow-up after it tells the agent. */
export const VM_LOST_PREFIX = 'The VM stopped unexpectedly';
export const RESTART_ACTION = 'Restart it with "Cowork: Restart Task VM" (or send a follow-up, which restarts it); its session disk keeps the changes.';
export const RESTART_NOTE = '[Cowork: the VM stopped unexpectedly and was restarted on the same session disk. Processes that were running and files outside /workspace are gone; the files in /workspace are as they were when it stopped. Check before relying on earlier results.]';
export const INTERRUPTED_MESSAGE = 'This turn was interrupted: the window closed or VS Code\'s extension host stopped while it ran. Nothing in /workspace was lost; a command that was running did not finish.';
export const QUEUED_REFUSAL = 'This task is waiting for a free slot (cowork.maxParallelTasks) and has not started: a follow-up cannot be added yet. Wait for it to start, or stop it.';

export class Task extends EventEmitter<{ live: [LiveEvent]; state: [TaskState]; wrote: []; scan: [PersistedScan] }> {
  private stateValue: TaskState = 'queued';
  private running: AbortController | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** set while the task waits for a free slot: ends the wait (false = stopped) */
  private queuedWait: ((go: boolean) => void) | undefined;
  private queuedText: string | undefined;
  private lastScanValue: PersistedScan | undefined;
  readonly vm: WorkspaceVm;
  /** awaited after each tool call that may write, before the next one starts (onSettle) */
  private readonly settlers = new Set<() => Promise<void>>();

  private constructor(
    readonly info: Omit<TaskInfo, 'state'>,
    readonly transcript: TranscriptStore,
    private readonly deps: TaskDeps,
  ) {
    super();
    this.vm = new WorkspaceVm({ helper: deps.helper, workspace: deps.workspace, storageDir: deps.storageDir, log: deps.log, vmId: `task-${info.id}`, guestLayer: deps.guestLayer, cacheDisk: deps.cacheDisk, warm: deps.warm });
    this.vm.onLost((reason) => this.vmLost(reason));
  }

  static async open(info: Omit<TaskInfo, 'state'>, deps: TaskDeps): Promise<Task> {
    const dir = path.join(deps.storageDir, 'tasks', info.id);
    const report = deps.report ?? ignoreProblems;
    const transcript = await TranscriptStore.open(path.join(dir, 'transcript.jsonl'), report);
    const task = new Task(info, transcript, deps);
    if (transcript.all.length > 0) task.stateValue = 'idle';
    // a turn that never ended: the window closed, or the extension host died, in the middle of it
    const last = transcript.all.at(-1);
    if (last && !['done', 'stopped', 'error'].includes(last.type)) {
      transcript.append({ type: 'error', message: INTERRUPTED_MESSAGE, action: 'Continue the task with a follow-up.' });
      await transcript.flush();
    }
    task.lastScanValue = await readJsonState(path.join(dir, 'last-scan.json'), (v) => LastScan.parse(v), report);
    return task;
  }

  /**
   * The change set as last scanned (persisted in the task's storage): what Source Control, the
   * panel and the status bar show after a window reload, before the VM is up to scan again.
   */
  get lastScan(): PersistedScan | undefined {
    return this.lastScanValue;
  }

  /** Records a fresh scan (the review calls this after each one); written atomically, then `scan` fires. */
  async recordScan(changes: readonly Change[]): Promise<void> {
    const scan = LastScan.fromChanges(changes);
    this.lastScanValue = scan;
    this.emit('scan', scan);
    try {
      await writeJsonAtomic(path.join(this.storageDir, 'last-scan.json'), LastScan.toJson(scan));
    } catch (err) {
      (this.deps.report ?? ignoreProblems)({ file: path.join(this.storageDir, 'last-scan.json'), message: `cannot save the last change scan: ${String(err)}` });
    }
  }

  /** The VM went away by itself: the turn (if any) is interrupted and the task says so. */
  private vmLost(reason: string): void {
    const e = this.transcript.append({ type: 'error', message: `${VM_LOST_PREFIX} (${reason}). The task was interrupted; nothing in /workspace was lost.`, action: RESTART_ACTION });
    this.emit('live', { type: 'transcript', event: e });
    this.running?.abort(`${VM_LOST_PREFIX}: ${reason}.`);
    this.setState('failed');
  }

  /** Whether the agent still has to be told that its VM was restarted (set by a VM loss, kept across reloads). */
  private get restartNotePending(): boolean {
    for (let i = this.transcript.all.length - 1; i >= 0; i--) {
      const e = this.transcript.all[i]!;
      if (e.type === 'user') return false;
      if (e.type === 'error' && e.message.startsWith(VM_LOST_PREFIX)) return true;
    }
    return false;
  }

  /** Boots the task's VM again after it stopped unexpectedly (same session disk, so the same changes). */
  async restartVm(): Promise<void> {
    if (this.running || this.queuedWait) throw new Error('This task is running; stop it first.');
    await this.vm.stop().catch(() => undefined);
    this.setState('booting');
    try {
      await this.vm.start(this.deps.settings());
      this.setState('idle');
    } catch (err) {
      this.setState('failed');
      throw err;
    } finally {
      this.scheduleIdleStop();
    }
  }

  /** While queued: waits until `register`'s callback grants a slot (true) or the task is stopped (false). */
  waitForSlot(text: string, register: (grant: () => boolean) => void): Promise<boolean> {
    this.setState('queued');
    this.queuedText = text;
    return new Promise<boolean>((resolve) => {
      this.queuedWait = (go) => {
        this.queuedWait = undefined;
        this.queuedText = undefined;
        resolve(go);
      };
      register(() => {
        if (!this.queuedWait) return false;
        this.queuedWait(true);
        return true;
      });
    });
  }

  get isQueued(): boolean {
    return this.queuedWait !== undefined;
  }

  /** Where the task's other state files (own-writes, direct-mode record) report an unreadable or unwritable file. */
  get reportState(): StateReporter {
    return this.deps.report ?? ignoreProblems;
  }

  /** This task's folder in the extension's storage (transcript, direct-mode record). */
  get storageDir(): string {
    return path.join(this.deps.storageDir, 'tasks', this.info.id);
  }

  get state(): TaskState {
    return this.stateValue;
  }

  get isRunning(): boolean {
    return this.running !== undefined;
  }

  private setState(s: TaskState): void {
    if (s === this.stateValue) return;
    this.stateValue = s;
    this.emit('state', s);
  }

  /** Sends a message (the prompt, or a follow-up) and works until the model ends its turn. */
  async send(text: string, images?: readonly PromptImage[]): Promise<TurnOutcome> {
    if (this.running) throw new Error('This task is already running; stop it or wait for it to finish.');
    // the agent is told, in this turn, that its VM is a new one
    if (this.restartNotePending) text = `${RESTART_NOTE}\n\n${text}`;
    const ac = new AbortController();
    this.running = ac;
    clearTimeout(this.idleTimer);
    try {
      const settings = this.deps.settings();
      const key = await this.deps.apiKey();
      if (!key) {
        this.transcript.append({ type: 'user', text, ...(images?.length ? { images: [...images] } : {}) });
        const e = this.transcript.append({ type: 'error', message: 'No Anthropic API key is set.', action: SET_KEY_ACTION });
        this.emit('live', { type: 'transcript', event: e });
        this.setState('failed');
        return 'error';
      }
      this.setState('booting');
      await this.vm.start(settings);
      if (ac.signal.aborted) {
        // stopped (or cancelled from the progress notification) while the VM booted: it is not needed
        await this.vm.stop().catch(() => undefined);
        this.setState('stopped');
        return 'stopped';
      }
      this.setState('running');
      const baseURL = settings.apiBaseUrl || undefined;
      // loaded on the first turn, not at activation (the SDK is most of the bundle's start-up cost)
      const [{ default: Anthropic }, { AgentLoop }, { AGENT_TOOLS }] = await Promise.all([import('@anthropic-ai/sdk'), import('../agent/loop'), import('../agent/tools')]);
      const loop = new AgentLoop({
        client: new Anthropic({ apiKey: key, baseURL, maxRetries: 4, defaultHeaders: settings['agent.extraHeaders'] }),
        model: this.info.model ?? settings.model,
        maxTokens: settings['agent.maxTokens'],
        tokenBudget: settings['agent.tokenBudget'],
        commandTimeoutMs: settings['agent.commandTimeoutSeconds'] * 1000,
        system: systemPrompt({ allowedDomains: settings['network.allowedDomains'], mode: this.info.mode, workspaceName: path.basename(this.deps.workspace) }),
        tools: AGENT_TOOLS,
        transcript: this.transcript,
        sandbox: () => {
          const sb = this.vm.sandbox;
          return sb ? Promise.resolve(sb) : Promise.reject(new Error(this.vm.lost ? `${VM_LOST_PREFIX} (${this.vm.lost}).` : 'The task VM is not running.'));
        },
        reconnect: () => (this.vm.lost ? Promise.reject(new Error(`${VM_LOST_PREFIX} (${this.vm.lost}).`)) : this.vm.reconnect()),
        onEvent: (e) => this.emit('live', e),
        onWrite: () => this.emit('wrote'),
        afterToolCall: (call) => (call.mayWrite ? this.settleWrites() : Promise.resolve()),
      });
      const outcome = await loop.send(text, ac.signal, images);
      this.setState(this.vm.lost ? 'failed' : outcome === 'stopped' ? 'stopped' : outcome === 'error' ? 'failed' : 'idle');
      return outcome;
    } catch (err) {
      // A VM that could not start because of the host's setup (missing tool, unusable accelerator,
      // boot failure) points at Check Setup, which names the failing prerequisite and its fix.
      const action = err instanceof VmHostRequestError && err.offersCheckSetup ? 'Run "Cowork: Check Setup" to see what is missing and how to fix it, then send a follow-up to try again.' : 'See "Cowork: Show Log" for details.';
      const e = this.transcript.append({ type: 'error', message: err instanceof Error ? err.message : String(err), action });
      this.emit('live', { type: 'transcript', event: e });
      this.setState('failed');
      return 'error';
    } finally {
      this.running = undefined;
      await this.transcript.flush();
      this.scheduleIdleStop();
    }
  }

  /**
   * Registers a scan to await after every tool call that may write, before the agent's next call
   * starts (the review's refresh, which in direct mode also applies): it sees a quiescent overlay.
   */
  onSettle(fn: () => Promise<void>): { dispose(): void } {
    this.settlers.add(fn);
    return { dispose: () => this.settlers.delete(fn) };
  }

  private async settleWrites(): Promise<void> {
    await Promise.all([...this.settlers].map((fn) => fn().catch(() => undefined)));
  }

  /** Stops the VM after cowork.vm.idleStopMinutes without a turn; its session disk keeps the changes. */
  private scheduleIdleStop(): void {
    const minutes = this.deps.settings()['vm.idleStopMinutes'];
    if (!minutes) return;
    this.idleTimer = setTimeout(() => {
      if (!this.running) void this.vm.stop().catch((err: unknown) => this.deps.log.warn(`[vm] idle stop failed: ${String(err)}`));
    }, minutes * 60_000);
    this.idleTimer.unref();
  }

  /** The running guest, booting it if needed (to review a task whose VM was stopped). */
  async guest(): Promise<GuestVm> {
    return this.vm.guestVm ?? (await this.vm.start(this.deps.settings()));
  }

  /** When the task was created: host edits after this make a changed file conflicted. */
  get startedAt(): number {
    return this.info.createdAt;
  }

  /** Aborts the model stream and kills the running command in the guest; a queued task leaves the queue. */
  stop(): void {
    if (this.queuedWait) {
      // the message is kept (a follow-up continues from it), marked as never started
      const u = this.transcript.append({ type: 'user', text: this.queuedText ?? '' });
      this.emit('live', { type: 'transcript', event: u });
      this.queuedWait(false);
      const e = this.transcript.append({ type: 'stopped', reason: 'The person stopped the task before it started.' });
      this.emit('live', { type: 'transcript', event: e });
      this.setState('stopped');
      return;
    }
    this.running?.abort();
  }

  /** A bounded graceful stop (deactivate): the turn is aborted, the guest synced and the VM stopped. */
  async shutdown(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.stop();
    await this.transcript.flush();
    await this.vm.dispose();
  }

  async dispose(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.stop();
    await this.vm.dispose();
  }
}
