// The VM of the open workspace as the extension sees it: starts the vm-host helper on first use,
// boots the guest lazily, exposes one state stream for the panel and the status bar, and stops
// everything on dispose. No `vscode` here: the glue passes paths, settings and a logger in.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
// The SSH client and the egress proxy are loaded when a VM starts, not at activation.
import type { JsonlAudit, EgressRecord } from '../egress/audit';
import type { EgressProxy } from '../egress/proxy';
import type { GuestVm } from '../guest/guestVm';
import type { GuestSandbox } from '../guest/sandbox';
import type { VmHostClient } from '../guest/vmHostClient';
import type { VmHelper } from './vmHelper';
import type { GuestLayerSpec, VmStateName } from '../protocol/vmHost';
import type { Settings } from '../config/settings';
import type { WarmVm } from './warmVm';
import { helperStartParams, vmStartParams } from './vmStartParams';

export interface Logger {
  trace(msg: string): void;
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface WorkspaceVmStatus {
  readonly state: VmStateName;
  readonly accelerator?: string;
  readonly detail?: string;
  readonly bootMs?: number;
  readonly imageProgress?: { readonly phase: string; readonly message: string; readonly fraction: number };
}

export interface WorkspaceVmOptions {
  /** the one vm-host helper of this extension host */
  readonly helper: VmHelper;
  readonly workspace: string;
  /** where session disks live (extension global storage) */
  readonly storageDir: string;
  readonly log: Logger;
  /** defaults to one derived from the workspace path */
  readonly vmId?: string;
  /** the derived guest layer to boot (consented workspace setup + machine packages), asked at each start */
  readonly guestLayer?: () => Promise<GuestLayerSpec | undefined>;
  /** this workspace's package-cache disk (session/cacheDisk.ts) */
  readonly cacheDisk?: string;
  /** the window's warm VM: a task whose id it was booted for adopts it instead of booting */
  readonly warm?: WarmVm;
}

export class WorkspaceVm {
  private subscriptions: { dispose(): void }[] | undefined;
  private guest: GuestVm | undefined;
  private starting: Promise<GuestVm> | undefined;
  private status: WorkspaceVmStatus = { state: 'stopped' };
  private proxy: EgressProxy | undefined;
  private audit: JsonlAudit | undefined;
  private sandboxInstance: GuestSandbox | undefined;
  private readonly emitter = new EventEmitter();
  /** set while we stop the VM ourselves: a VM that goes away otherwise stopped unexpectedly */
  private stopping = false;
  private lostReason: string | undefined;

  constructor(private readonly opts: WorkspaceVmOptions) {}

  get vmId(): string {
    if (this.opts.vmId) return this.opts.vmId;
    const hash = createHash('sha256').update(this.opts.workspace).digest('hex').slice(0, 12);
    return `ws-${hash}`;
  }

  get sessionDisk(): string {
    return path.join(this.sessionsDir, `${this.vmId}.qcow2`);
  }

  get sessionsDir(): string {
    return path.join(this.opts.storageDir, 'sessions');
  }

  get egressLog(): string {
    return path.join(this.opts.storageDir, 'egress', `${this.vmId}.jsonl`);
  }

  /** The running guest, if any (the review reads the change set through it). */
  get guestVm(): GuestVm | undefined {
    return this.guest;
  }

  /** The sandbox every command from the agent (or the person, through the panel) runs in. */
  get sandbox(): GuestSandbox | undefined {
    return this.sandboxInstance;
  }

  onEgress(listener: (r: EgressRecord) => void): { dispose(): void } {
    this.emitter.on('egress', listener);
    return { dispose: () => this.emitter.off('egress', listener) };
  }

  get current(): WorkspaceVmStatus {
    return this.status;
  }

  onStatus(listener: (s: WorkspaceVmStatus) => void): { dispose(): void } {
    this.emitter.on('status', listener);
    return { dispose: () => this.emitter.off('status', listener) };
  }

  /**
   * The VM went away without being asked (QEMU killed, guest panic, the helper died): the session
   * disk keeps the changes; the next start() boots a new VM on it.
   */
  onLost(listener: (reason: string) => void): { dispose(): void } {
    this.emitter.on('lost', listener);
    return { dispose: () => this.emitter.off('lost', listener) };
  }

  /** Why the VM stopped unexpectedly, until it is started again. */
  get lost(): string | undefined {
    return this.lostReason;
  }

  private markLost(reason: string): void {
    const guest = this.guest;
    if (!guest || this.stopping) return;
    this.guest = undefined;
    this.sandboxInstance = undefined;
    this.lostReason = reason;
    guest.connection.close();
    this.opts.log.warn(`[vm] ${this.vmId} stopped unexpectedly: ${reason}`);
    this.setStatus({ state: 'failed', detail: `The VM stopped unexpectedly (${reason}) — Restart` });
    this.emitter.emit('lost', reason);
  }

  private setStatus(next: WorkspaceVmStatus): void {
    this.status = next;
    this.emitter.emit('status', next);
  }

  private helper(): VmHostClient {
    this.subscriptions ??= [
      this.opts.helper.onEvent((ev) => {
        if (ev.event === 'image.progress' && this.status.state === 'booting') this.setStatus({ ...this.status, imageProgress: { phase: ev.phase, message: ev.message, fraction: ev.fraction } });
        else if (ev.event === 'vm.state' && ev.vmId === this.vmId) {
          if ((ev.state === 'failed' || ev.state === 'stopped') && this.guest && !this.stopping) this.markLost(ev.detail ?? `it is ${ev.state}`);
          // booted is not ready yet: start() says ready once SSH and the egress proxy are up too
          else if (!(ev.state === 'ready' && this.starting)) this.setStatus({ ...this.status, state: ev.state, detail: ev.detail });
        }
      }),
      this.opts.helper.onExit((err) => {
        if (this.guest && !this.stopping) return this.markLost(`the VM helper exited: ${err.message}`);
        if (!this.guest && !this.starting) return;
        this.guest = undefined;
        this.starting = undefined;
        this.setStatus({ state: 'failed', detail: err.message });
      }),
    ];
    return this.opts.helper.get();
  }

  /**
   * Boots the VM if it is not running; concurrent callers share one boot. Each step that starts
   * something pushes its undo; a later step failing pops them in reverse, so a half-started VM
   * (booted, but its egress proxy could not start) is stopped again, not left running.
   */
  start(settings: Settings): Promise<GuestVm> {
    if (this.guest && !this.guest.connection.isClosed) return Promise.resolve(this.guest);
    this.starting ??= (async () => {
      this.setStatus({ state: 'booting' });
      const undo: { what: string; run: () => Promise<void> }[] = [];
      try {
        const [{ GuestVm }, { GuestSandbox, installExtraCa }] = await Promise.all([import('../guest/guestVm'), import('../guest/sandbox')]);
        const guestLayer = await this.opts.guestLayer?.();
        this.opts.warm?.noteLayer(guestLayer);
        // reads the extra CA files: a bad one fails the start here, before anything boots
        const params = vmStartParams({ vmId: this.vmId, workspace: this.opts.workspace, sessionDisk: this.sessionDisk, cacheDisk: this.opts.cacheDisk }, settings, guestLayer);
        const helper = this.helper();
        // the warm VM booted for this task (same id, same session disk), when it fits; else a boot.
        // GuestVm.start stops the VM itself when SSH or the guest agent cannot be reached.
        const guest = (await this.opts.warm?.adopt(params)) ?? (await GuestVm.start(helper, helperStartParams(params)));
        undo.push({ what: 'stop the VM', run: () => guest.stop(0) });
        // before the sandbox is made (an adopted warm VM has the same ones already: bootShapeDifference)
        if (params.extraCa) await installExtraCa(guest, params.extraCa);
        undo.push({ what: 'close the egress proxy', run: () => this.closeEgress() });
        await this.attachEgress(settings);
        this.guest = guest;
        this.lostReason = undefined;
        this.sandboxInstance = GuestSandbox.for(guest);
        this.setStatus({ state: 'ready', accelerator: guest.info.accelerator, bootMs: guest.info.bootMs });
        this.opts.log.info(`[vm] ready in ${guest.info.bootMs} ms with ${guest.info.accelerator}`);
        return guest;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        for (const step of undo.reverse()) {
          await withTimeout(step.run(), UNDO_TIMEOUT_MS).catch((e: unknown) => this.opts.log.warn(`[vm] after a failed start, could not ${step.what}: ${String(e)}`));
        }
        this.setStatus({ state: 'failed', detail: message });
        throw err;
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  private async closeEgress(): Promise<void> {
    const [proxy, audit] = [this.proxy, this.audit];
    this.proxy = undefined;
    this.audit = undefined;
    await proxy?.close();
    await audit?.close();
  }

  private async attachEgress(settings: Settings): Promise<void> {
    await this.closeEgress();
    const apiHost = settings.apiBaseUrl ? new URL(settings.apiBaseUrl).hostname : undefined;
    const [{ JsonlAudit }, { egressSocketPaths }, { EgressPolicy }, { EgressProxy }] = await Promise.all([import('../egress/audit'), import('../egress/hostSockets'), import('../egress/policy'), import('../egress/proxy')]);
    this.audit = new JsonlAudit(this.egressLog);
    this.proxy = new EgressProxy({
      task: this.vmId,
      policy: new EgressPolicy({ allowed: settings['network.allowedDomains'], denied: settings['network.deniedDomains'], modelHosts: apiHost ? [apiHost] : [] }),
      audit: this.audit,
    });
    this.proxy.on('decision', (r) => {
      this.opts.log[r.allowed ? 'debug' : 'info'](`[egress] ${r.allowed ? 'allowed' : 'DENIED'} ${r.method ?? r.via} ${r.host}:${r.port} (${r.rule}${r.reason ? `: ${r.reason}` : ''})`);
      this.emitter.emit('egress', r);
    });
    // this VM's sockets, which its QEMU (booted with them, maybe as the warm VM) connects each guest connection to
    await this.proxy.listenOn(egressSocketPaths(this.vmId));
  }

  /**
   * The person allowed a blocked destination for this task (from the panel). A name alone covers
   * ports 80/443 only (extension/egress/policy.ts), so a refusal on another port grants host:port.
   * Returns the entry that was added.
   */
  allowDomain(host: string, port?: number): string {
    if (!this.proxy) throw new Error('The VM is not running.');
    const entry = port === undefined || port === 80 || port === 443 ? host : `${host}:${port}`;
    this.proxy.allow(entry);
    this.opts.log.info(`[egress] ${entry} allowed for ${this.vmId} by the person`);
    return entry;
  }

  /** Re-establishes SSH after the connection dropped. */
  /** What QEMU uses now (resident memory, cpu time) and the session disk's allocated size. */
  async usage(): Promise<{ rssBytes?: number; cpuSeconds?: number; sessionDiskBytes?: number } | undefined> {
    if (this.status.state === 'stopped' || this.status.state === 'failed') return undefined;
    const { vms } = await this.helper().request('vm.list', {});
    return vms.find((v) => v.vmId === this.vmId);
  }

  async reconnect(): Promise<void> {
    if (!this.guest) throw new Error('The VM is not running.');
    await this.guest.reconnect();
  }

  async stop(): Promise<void> {
    const guest = this.guest ?? (await this.starting?.catch(() => undefined));
    this.guest = undefined;
    this.sandboxInstance = undefined;
    this.lostReason = undefined;
    if (guest) {
      this.stopping = true;
      this.setStatus({ ...this.status, state: 'stopping' });
      try {
        await guest.stop();
      } finally {
        this.stopping = false;
      }
    }
    this.setStatus({ state: 'stopped' });
  }

  async dispose(): Promise<void> {
    await this.stop().catch(() => undefined);
    await this.closeEgress();
    for (const d of this.subscriptions ?? []) d.dispose();
    this.subscriptions = undefined;
    this.emitter.removeAllListeners();
  }
}

/** How long one undo step of a failed start may take before the next one runs. */
export const UNDO_TIMEOUT_MS = 15_000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
