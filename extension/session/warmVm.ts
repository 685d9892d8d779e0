// The warm VM (cowork.vm.warm): one booted, idle VM kept ready for this window's workspace, with its
// SSH connection and guest agent already up, so that a new task adopts it instead of waiting for a
// boot (issue 14: under TCG a cold start to the first command takes ~9 s, of which the boot and the
// SSH + agent start are nearly all).
//
// - Its id is the id of the task that will adopt it: the VM is booted as task-<id> on the session
//   disk task-<id>.qcow2 and TaskManager.create hands that id to the next task (claimId). So the
//   sandbox identity (derived from the vm id by the helper) and the session disk are the task's own
//   from the first boot: a later restart of the task boots the same identity on the same disk.
// - It has run nothing of any task: a fresh session disk, and only /bin/true in the sandbox of the
//   task it will serve (startSandbox: why). The task's egress proxy and policy and its transcript
//   attach when it adopts it (WorkspaceVm.start). A task never sees another task's files or
//   processes, because each warm VM serves exactly one task.
// - Whatever is fixed at boot must match what the task would boot with (vmStartParams.ts), else it
//   is stopped and the task boots as before.
// - It is booted only when the task manager says no turn is running (see TaskManager.warmUp): on a
//   2-core TCG host a boot takes both cores for seconds and would slow the task's commands.
// - It counts toward cowork.maxParallelTasks with the tasks' VMs (TaskManager.balanceWarm): the
//   person bounds Cowork's memory with that setting, and the warm VM is the next task's VM.
// - None while the host runs on battery; it dies with the helper (window close, helper death: the
//   helper's watchdog kills every QEMU), with Clean Up and when the setting is turned off. Stop VM
//   stops it and holds it off until a task's turn starts (stop/resume: why).
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import type { Settings } from '../config/settings';
import { combineLayer } from '../config/guestSetup';
import type { GuestVm } from '../guest/guestVm';
import type { GuestLayerSpec } from '../protocol/vmHost';
import type { VmHelper } from './vmHelper';
import { bootShapeDifference, helperStartParams, vmStartParams, type TaskVmParams } from './vmStartParams';
import type { Logger } from './workspaceVm';

/** After this many warm boots in a row failed (or the VM died idle), no more are tried in this window. */
export const WARM_MAX_FAILURES = 2;
/** Starting the task's sandbox ahead in the warm VM may take this long (then its first command does it). */
export const SANDBOX_START_TIMEOUT_MS = 60_000;

export interface WarmVmOptions {
  readonly helper: VmHelper;
  readonly workspace: string;
  /** the workspace's extension storage (the tasks' session disks are in its sessions/ folder) */
  readonly storageDir: string;
  readonly log: Logger;
  readonly settings: () => Settings;
  readonly cacheDisk?: string;
  /** true while the host runs on battery (default: /sys/class/power_supply says discharging) */
  readonly onBattery?: () => Promise<boolean>;
}

interface Slot {
  readonly id: string;
  readonly params: TaskVmParams;
  /** resolves to the booted guest, or undefined when the boot failed or was stopped */
  boot: Promise<GuestVm | undefined>;
  guest?: GuestVm;
  /** the task this VM is promised to (TaskManager.create) */
  claimed: boolean;
}

export type WarmState = 'off' | 'booting' | 'ready';

export class WarmVm {
  private slot: Slot | undefined;
  private failures = 0;
  private disposed = false;
  /** set by Stop VM (stop()): no warm boot until resume() */
  private held = false;
  /** the guest layer the last task start resolved (consent is asked only for a task, never for the warm VM) */
  private layer: GuestLayerSpec | undefined | null = null;
  private readonly subscriptions: { dispose(): void }[];
  private readonly listeners = new Set<(s: WarmState) => void>();

  constructor(private readonly opts: WarmVmOptions) {
    this.subscriptions = [
      opts.helper.onEvent((ev) => {
        const slot = this.slot;
        if (ev.event !== 'vm.state' || !slot?.guest || ev.vmId !== `task-${slot.id}`) return;
        if (ev.state === 'failed' || ev.state === 'stopped') this.dropDead(slot, ev.detail ?? `it is ${ev.state}`);
      }),
      opts.helper.onExit((err) => {
        if (this.slot) this.dropDead(this.slot, `the VM helper exited: ${err.message}`);
      }),
    ];
  }

  get state(): WarmState {
    return !this.slot ? 'off' : this.slot.guest ? 'ready' : 'booting';
  }

  /** Whether the warm VM is promised to a task that has not adopted it yet (it is that task's VM now). */
  /** Warm boots that failed in a row (fill() tries no more at WARM_MAX_FAILURES). */
  get failedBoots(): number {
    return this.failures;
  }

  get claimed(): boolean {
    return this.slot?.claimed ?? false;
  }

  /** Whether Stop VM holds warm boots off (until resume()). */
  get isHeld(): boolean {
    return this.held;
  }

  /** The warm VM's id in the helper (task-<id>), while there is one. */
  get vmId(): string | undefined {
    return this.slot ? `task-${this.slot.id}` : undefined;
  }

  /** Its session disk's file name, which no task lists yet (Clean Up must not take it for an orphan). */
  get sessionDiskName(): string | undefined {
    return this.slot ? `task-${this.slot.id}.qcow2` : undefined;
  }

  onState(listener: (s: WarmState) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private changed(): void {
    const s = this.state;
    for (const l of this.listeners) l(s);
  }

  /** What a task start resolved as its guest layer: the next warm VM boots the same. */
  noteLayer(layer: GuestLayerSpec | undefined): void {
    this.layer = layer;
  }

  /**
   * Boots a warm VM unless there is one, the setting is off, the host is on battery, or warm boots
   * kept failing. The caller picks the moment (no turn running). Resolves when the boot is settled.
   */
  async fill(): Promise<void> {
    if (this.disposed || this.held || this.slot || this.failures >= WARM_MAX_FAILURES) return;
    const settings = this.opts.settings();
    if (!settings['vm.warm']) return;
    if (await (this.opts.onBattery ?? onBattery)()) {
      this.opts.log.info('[vm] no warm VM: the host runs on battery');
      return;
    }
    if (this.disposed || this.held || this.slot) return;
    const id = randomBytes(6).toString('hex');
    const vmId = `task-${id}`;
    const layer = this.layer === null ? combineLayer(undefined, settings['guest.extraPackages']) : this.layer;
    let params: TaskVmParams;
    try {
      params = vmStartParams({ vmId, workspace: this.opts.workspace, sessionDisk: this.sessionDisk(id), cacheDisk: this.opts.cacheDisk }, settings, layer);
    } catch (err) {
      // a bad cowork.network.extraCaCertificates file: the task's own start says so to the person
      this.opts.log.warn(`[vm] no warm VM: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const slot: Slot = { id, params, claimed: false, boot: Promise.resolve(undefined) };
    slot.boot = this.boot(slot);
    this.slot = slot;
    this.changed();
    await slot.boot;
  }

  private async boot(slot: Slot): Promise<GuestVm | undefined> {
    const t0 = Date.now();
    try {
      const { GuestVm } = await import('../guest/guestVm');
      this.opts.log.info(`[vm] booting a warm VM (task-${slot.id}) for the next task`);
      const guest = await GuestVm.start(this.opts.helper.get(), helperStartParams(slot.params));
      if (this.slot === slot) await this.startSandbox(guest, slot);
      if (this.slot !== slot) {
        // discarded while it booted
        await guest.stop(0).catch(() => undefined);
        return undefined;
      }
      slot.guest = guest;
      this.failures = 0;
      this.opts.log.info(`[vm] the warm VM task-${slot.id} is ready (${Date.now() - t0} ms, ${guest.info.accelerator})`);
      this.changed();
      preloadFirstTurn();
      return guest;
    } catch (err) {
      if (this.slot === slot) {
        this.failures++;
        this.slot = undefined;
        this.opts.log.warn(`[vm] the warm VM did not start: ${err instanceof Error ? err.message : String(err)}${this.failures >= WARM_MAX_FAILURES ? ' (no more warm VMs in this window)' : ''}`);
        this.changed();
      }
      await rm(slot.params.sessionDisk, { force: true }).catch(() => undefined);
      return undefined;
    }
  }

  /**
   * Starts the task's sandbox (bwrap + its executor, as the task's sandbox user: the vm id, and so
   * the identity, is already the task's) by running /bin/true in it. Measured here under TCG: the
   * first command of a VM takes 0.6–1.3 s, the next ones ~0.2 s; that difference is most of what
   * was left of Delegate → first command once the boot was gone. Nothing is written: the overlay
   * stays empty. The egress relays start with this sandbox too (the guest's egress-relay listens
   * from the agent's start); until the task adopts the VM and its proxy listens on the VM's host
   * socket, a connection out finds no listener and is closed. A failure here only means the first
   * command starts the sandbox.
   */
  private async startSandbox(guest: GuestVm, slot: Slot): Promise<void> {
    try {
      const { GuestSandbox, installExtraCa } = await import('../guest/sandbox');
      // before the sandbox, which binds them from its start; if this fails, no sandbox is made
      // here and the task's start installs them again before its first command
      if (slot.params.extraCa) await installExtraCa(guest, slot.params.extraCa);
      const r = await GuestSandbox.for(guest).runArgv(['/bin/true'], { timeoutMs: SANDBOX_START_TIMEOUT_MS });
      if (r.code !== 0) this.opts.log.debug(`[vm] the warm VM's sandbox did not start ahead (exit ${r.code}): ${r.stderr.toString().slice(0, 200)}`);
    } catch (err) {
      this.opts.log.debug(`[vm] the warm VM task-${slot.id}'s sandbox did not start ahead: ${String(err)}`);
    }
  }

  private sessionDisk(id: string): string {
    return path.join(this.opts.storageDir, 'sessions', `task-${id}.qcow2`);
  }

  /** The id of the warm VM for a new task to take (it adopts the VM at its start), or undefined. */
  claimId(): string | undefined {
    const slot = this.slot;
    if (!slot || slot.claimed) return undefined;
    slot.claimed = true;
    return slot.id;
  }

  /**
   * The warm VM booted as `wanted.vmId`, if it is the one promised to this task and fits `wanted`;
   * a warm VM that does not fit is stopped (the task then boots as usual on the same id).
   */
  async adopt(wanted: TaskVmParams): Promise<GuestVm | undefined> {
    const slot = this.slot;
    if (!slot || `task-${slot.id}` !== wanted.vmId) return undefined;
    const guest = await slot.boot; // still booting: it has a head start on a cold boot
    if (this.slot !== slot || !guest) return undefined;
    let why = bootShapeDifference(slot.params, wanted);
    if (!why && wanted.cacheDisk && guest.info.cacheDiskAttached === false && !(await this.cacheDiskHeldElsewhere(wanted.cacheDisk, wanted.vmId))) {
      why = 'the package cache is free now but the warm VM booted without it';
    }
    if (!why && guest.connection.isClosed) {
      why = await guest.reconnect().then(
        () => undefined,
        (err: unknown) => `its SSH connection closed and did not come back (${String(err)})`,
      );
    }
    this.slot = undefined;
    this.changed();
    if (why) {
      this.opts.log.info(`[vm] the warm VM does not fit this task (${why}); booting one for it`);
      await this.stopGuest(slot, guest);
      return undefined;
    }
    this.opts.log.info(`[vm] ${wanted.vmId} adopted the warm VM`);
    return guest;
  }

  private async cacheDiskHeldElsewhere(file: string, except: string): Promise<boolean> {
    const { vms } = await this.opts.helper.get().request('vm.list', {});
    return vms.some((v) => v.vmId !== except && v.cacheDisk !== undefined && path.resolve(v.cacheDisk) === path.resolve(file));
  }

  /**
   * TaskManager.create failed after claimId (its state file or transcript could not be written): no
   * task got this id, so the VM goes back to the pool and the next task gets it (and the id). Left
   * claimed, it would serve no task: balanceWarm leaves a claimed VM alone and fill() sees the slot
   * taken, so every later task would boot its own VM until Stop VM or a reload.
   */
  unclaim(id: string): void {
    if (this.slot?.id === id) this.slot.claimed = false;
  }

  /**
   * The task promised this VM ended the turn that claimed it without adopting it (no API key, its
   * start failed before the adoption, it was stopped while queued): the VM is stopped, not handed
   * back, because its id is that task's now (its task.json and transcript are under it, and a
   * follow-up boots task-<id> on that session disk), so no other task may take it.
   */
  async forgo(taskId: string): Promise<void> {
    if (this.slot?.id === taskId && this.slot.claimed) await this.discard('its task ended a turn without adopting it');
  }

  /** The task promised this VM was deleted before it started: the VM goes (its id goes with the task). */
  async release(taskId: string): Promise<void> {
    if (this.slot?.id === taskId) await this.discard('its task was deleted');
  }

  /**
   * Stop VM: the person wants no idle VM of Cowork running for this window, so the warm VM stops
   * and none boots again until resume() (the next task's turn starts; its end boots one, as after
   * any turn). Booting one again at the next turn's end, rather than never in this window, because
   * delegating is the person's sign that they use Cowork's VMs again, and a window that never gets
   * its warm VM back would make every later task wait for a boot without saying why. A window
   * reload starts as any window does (with a warm VM): the hold is this window's.
   */
  async stop(reason: string): Promise<void> {
    this.held = true;
    await this.discard(reason);
  }

  /** A task's turn starts: warm boots are allowed again (after Stop VM). */
  resume(): void {
    this.held = false;
  }

  /** Stops the warm VM (booting or ready) and removes its session disk. */
  async discard(reason: string): Promise<void> {
    const slot = this.slot;
    if (!slot) return;
    this.slot = undefined;
    this.opts.log.info(`[vm] stopping the warm VM task-${slot.id}: ${reason}`);
    this.changed();
    // a boot under way is cancelled by its id; boot() stops a guest that comes up anyway
    if (!slot.guest) await this.opts.helper.get().request('vm.stop', { vmId: `task-${slot.id}`, graceMs: 0 }).catch(() => undefined);
    await this.stopGuest(slot, await slot.boot);
  }

  private async stopGuest(slot: Slot, guest: GuestVm | undefined): Promise<void> {
    await guest?.stop(0).catch((err: unknown) => this.opts.log.warn(`[vm] could not stop the warm VM: ${String(err)}`));
    await rm(slot.params.sessionDisk, { force: true }).catch(() => undefined);
  }

  /** The warm VM went away by itself (QEMU died, the helper exited): forget it; the next fill boots another. */
  private dropDead(slot: Slot, reason: string): void {
    if (this.slot !== slot) return;
    this.slot = undefined;
    this.failures++;
    this.opts.log.warn(`[vm] the warm VM task-${slot.id} stopped unexpectedly: ${reason}`);
    slot.guest?.connection.close();
    this.changed();
    void rm(slot.params.sessionDisk, { force: true }).catch(() => undefined);
  }

  /** What the warm VM's QEMU uses now (resident memory), for the panel's memory figure. */
  async rssBytes(): Promise<number | undefined> {
    const vmId = this.state === 'ready' ? this.vmId : undefined;
    if (!vmId) return undefined;
    const { vms } = await this.opts.helper.get().request('vm.list', {});
    return vms.find((v) => v.vmId === vmId)?.rssBytes;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.discard('the window closes');
    for (const s of this.subscriptions) s.dispose();
    this.listeners.clear();
  }
}

/**
 * Loads what a task's first turn imports lazily (the egress proxy, the SDK, the agent loop: kept out
 * of activation), while the warm VM waits, so that the first Delegate of a window does not pay it.
 */
function preloadFirstTurn(): void {
  void Promise.all([import('../egress/audit'), import('../egress/policy'), import('../egress/proxy'), import('../guest/sandbox'), import('@anthropic-ai/sdk'), import('../agent/loop'), import('../agent/tools')]).catch(() => undefined);
}

/** Whether a battery of this host is discharging (Linux sysfs; elsewhere: no warm-VM opinion, false). */
export async function onBattery(dir = '/sys/class/power_supply'): Promise<boolean> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const read = (f: string): Promise<string> => readFile(path.join(dir, name, f), 'utf8').then((s) => s.trim(), () => '');
    if ((await read('type')) === 'Battery' && (await read('status')) === 'Discharging') return true;
  }
  return false;
}
