// A task: the person's prompt, its own VM (lease + overlay on its session disk + egress proxy with
// its own audit log), its transcript, and the agent loop that works on it. vscode-free; the glue
// passes the API key getter, settings and a logger in.
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import type { LiveEvent, TurnOutcome } from '../agent/loop';
import { systemPrompt } from '../agent/systemPrompt';
import { TranscriptStore } from '../agent/transcript';
import { SET_KEY_ACTION } from '../agent/actions';
import type { Settings } from '../config/settings';
import type { GuestVm } from '../guest/guestVm';
import type { VmHelper } from './vmHelper';
import { WorkspaceVm, type Logger } from './workspaceVm';

export type TaskState = 'queued' | 'booting' | 'running' | 'idle' | 'failed' | 'stopped';

export interface TaskInfo {
  readonly id: string;
  readonly title: string;
  readonly createdAt: number;
  /** fixed when the task is created: switching the setting never turns pending changes into applied ones */
  readonly mode: 'review' | 'direct';
  readonly state: TaskState;
}

export interface TaskDeps {
  readonly helper: VmHelper;
  readonly workspace: string;
  readonly storageDir: string;
  readonly log: Logger;
  readonly apiKey: () => Promise<string | undefined>;
  readonly settings: () => Settings;
}

export class Task extends EventEmitter<{ live: [LiveEvent]; state: [TaskState]; wrote: [] }> {
  private stateValue: TaskState = 'queued';
  private running: AbortController | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  readonly vm: WorkspaceVm;

  private constructor(
    readonly info: Omit<TaskInfo, 'state'>,
    readonly transcript: TranscriptStore,
    private readonly deps: TaskDeps,
  ) {
    super();
    this.vm = new WorkspaceVm({ helper: deps.helper, workspace: deps.workspace, storageDir: deps.storageDir, log: deps.log, vmId: `task-${info.id}` });
  }

  static async open(info: Omit<TaskInfo, 'state'>, deps: TaskDeps): Promise<Task> {
    const transcript = await TranscriptStore.open(path.join(deps.storageDir, 'tasks', info.id, 'transcript.jsonl'));
    const task = new Task(info, transcript, deps);
    if (transcript.all.length > 0) task.stateValue = 'idle';
    return task;
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
  async send(text: string): Promise<TurnOutcome> {
    if (this.running) throw new Error('This task is already running; stop it or wait for it to finish.');
    const ac = new AbortController();
    this.running = ac;
    clearTimeout(this.idleTimer);
    try {
      const settings = this.deps.settings();
      const key = await this.deps.apiKey();
      if (!key) {
        this.transcript.append({ type: 'user', text });
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
        model: settings.model,
        maxTokens: settings['agent.maxTokens'],
        tokenBudget: settings['agent.tokenBudget'],
        commandTimeoutMs: settings['agent.commandTimeoutSeconds'] * 1000,
        system: systemPrompt({ allowedDomains: settings['network.allowedDomains'], mode: this.info.mode, workspaceName: path.basename(this.deps.workspace) }),
        tools: AGENT_TOOLS,
        transcript: this.transcript,
        sandbox: () => {
          const sb = this.vm.sandbox;
          return sb ? Promise.resolve(sb) : Promise.reject(new Error('The task VM is not running.'));
        },
        reconnect: () => this.vm.reconnect(),
        onEvent: (e) => this.emit('live', e),
        onWrite: () => this.emit('wrote'),
      });
      const outcome = await loop.send(text, ac.signal);
      this.setState(outcome === 'stopped' ? 'stopped' : outcome === 'error' ? 'failed' : 'idle');
      return outcome;
    } catch (err) {
      const e = this.transcript.append({ type: 'error', message: err instanceof Error ? err.message : String(err), action: 'See "Cowork: Show Log" for details.' });
      this.emit('live', { type: 'transcript', event: e });
      this.setState('failed');
      return 'error';
    } finally {
      this.running = undefined;
      await this.transcript.flush();
      this.scheduleIdleStop();
    }
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

  /** Aborts the model stream and kills the running command in the guest. */
  stop(): void {
    this.running?.abort();
  }

  async dispose(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.stop();
    await this.vm.dispose();
  }
}
