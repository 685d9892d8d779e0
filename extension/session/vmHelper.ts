// One vm-host helper for the whole extension host: it owns every VM (the workspace's and each
// task's), so there is one helper process and one watchdog however many tasks run. Its log lines
// are logged once here; VM-specific events are filtered by the WorkspaceVm that owns the VM.
import { VmHostClient } from '../guest/vmHostClient';
import type { DoctorLine, VmHostEvent } from '../protocol/vmHost';
import type { Logger } from './workspaceVm';

export class VmHelper {
  private client: VmHostClient | undefined;
  private readonly eventListeners = new Set<(ev: VmHostEvent) => void>();
  private readonly exitListeners = new Set<(err: Error) => void>();

  constructor(private readonly opts: { helperPath: string; log: Logger; env?: Readonly<Record<string, string>> }) {}

  /** The running helper, started on first use and again after it exited. */
  get(): VmHostClient {
    if (this.client) return this.client;
    const log = this.opts.log;
    const client = new VmHostClient({ helperPath: this.opts.helperPath, env: this.opts.env, onLog: (level, message) => (level === 'warn' ? log.warn(message) : log.debug(message)) });
    client.onEvent((ev) => {
      if (ev.event === 'log') log[ev.level](ev.message);
      else if (ev.event === 'vm.console') log.trace(`[vm] ${ev.vmId} console: ${ev.line}`);
      else if (ev.event === 'vm.state') log.info(`[vm] ${ev.vmId} is ${ev.state}${ev.detail ? `: ${ev.detail}` : ''}`);
      else if (ev.event === 'vm.progress') log.debug(`[vm] ${ev.vmId} boot step ${ev.step} (${(ev.elapsedMs / 1000).toFixed(1)} s of ${Math.round(ev.timeoutMs / 1000)} s, ${ev.accelerator})`);
      else if (ev.event === 'vm.notice') log.warn(`[vm] ${ev.vmId}: ${ev.message}`);
      for (const l of this.eventListeners) l(ev);
    });
    client.onExit((err) => {
      log.warn(`[vm] ${err.message}`);
      if (this.client === client) this.client = undefined;
      for (const l of this.exitListeners) l(err);
    });
    this.client = client;
    return client;
  }

  onEvent(listener: (ev: VmHostEvent) => void): { dispose(): void } {
    this.eventListeners.add(listener);
    return { dispose: () => this.eventListeners.delete(listener) };
  }

  onExit(listener: (err: Error) => void): { dispose(): void } {
    this.exitListeners.add(listener);
    return { dispose: () => this.exitListeners.delete(listener) };
  }

  /** The prerequisites as the helper sees them (Cowork: Check Setup adds the extension's own lines). */
  async doctor(params: { reprobe?: boolean; sessionsDir?: string } = {}): Promise<{ ok: boolean; lines: DoctorLine[] }> {
    return this.get().request('doctor', params);
  }

  /** Closes the helper's stdin: it stops every VM it owns and exits. */
  async dispose(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.dispose();
  }
}
