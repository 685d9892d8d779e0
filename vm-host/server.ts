// The helper's request handler: validates every request, owns every VM, and tears them all down
// when its parent goes away.
//  - A start is reserved under its vm id before anything is awaited, so a second vm.start of the
//    same id fails at once with 'vm-exists' instead of after a boot.
//  - "auto" falls back to TCG on any failure of a hardware accelerator before the guest's first
//    sign of life (vm-host/acceleratorFallback.ts), says why in one line (a vm.notice event and the
//    start result's `notice`), and caches the verdict; an explicit accelerator fails with the reason.
//  - The boot time-out is relative to this host's last measured boot (vm-host/bootTimes.ts).
//  - A VM that dies once ready is unregistered and reported (vm.state 'failed' with the reason),
//    so vm.start of the same id works again on the same session disk.
//  - shutdown is bounded: the image build is cancelled (its process groups killed), every VM gets
//    SIGTERM and then SIGKILL after its grace period, all within SHUTDOWN_DEADLINE_MS.
import { stat } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  PROTOCOL_VERSION,
  type DoctorLine,
  Requests,
  RequestLine,
  type RequestName,
  type RequestParams,
  type RequestResult,
  type ResolvedAccelerator,
  type VmHostEvent,
  type VmStartParams,
} from '../extension/protocol/vmHost';
import { fallbackNotice, unusableMessage } from './acceleratorFallback';
import { AcceleratorVerdicts } from './acceleratorVerdicts';
import { BootTimes } from './bootTimes';
import { runDoctor } from './doctor';
import { availableAccelerators, pickAccelerator, probeAccelerators, type AcceleratorProbe } from './drivers/accelerator';
import { qemuDriver } from './drivers/qemu';
import { ensureCacheDisk } from './cacheDisk';
import { cleanupDisks, ensureSessionDisk } from './disks';
import { VmHostError } from './errors';
import { EGRESS_TOOL, qemuTools, requireTools } from './hostTools';
import { BUILD_KILL_GRACE_MS, ensureImage, type GuestImage } from './image/builder';
import { defaultCacheDir } from './image/cacheDir';
import { ensureGuestLayer, isEmptyLayerSpec, type GuestLayer } from './image/guestLayer';
import { hostArch, type RecipeSources } from './image/recipe';
import { allocatedBytes, processStats } from './stats';
import { STOP_GRACE_MS, Vm } from './vm';
import { Watchdog } from './watchdog';

/** shutdown never takes longer than this (then every QEMU and build group is SIGKILLed) */
export const SHUTDOWN_DEADLINE_MS = STOP_GRACE_MS + BUILD_KILL_GRACE_MS + 2_000;

export interface ServerOptions {
  readonly send: (line: object) => void;
  readonly sources: RecipeSources;
  readonly cacheDir?: string;
  /** see HW_SIGN_OF_LIFE_MS */
  readonly signOfLifeMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** The QEMU program: COWORK_QEMU_BINARY (a path or a name on PATH) or the one for this host's architecture. */
export function qemuBinaryFor(env: NodeJS.ProcessEnv = process.env, arch = hostArch()): string {
  return env.COWORK_QEMU_BINARY || (arch === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64');
}

export class VmHostServer {
  private readonly vms = new Map<string, Vm>();
  /** vm ids whose start is under way (reserved before the first await) */
  private readonly starting = new Set<string>();
  /** vm ids stopped while their start was still before the boot */
  private readonly cancelledStarts = new Set<string>();
  private imagePromise: Promise<GuestImage> | undefined;
  /** derived layers being built or checked, by spec: concurrent starts of one spec share one build */
  private readonly layers = new Map<string, Promise<GuestLayer>>();
  private readonly verifiedLayers = new Map<string, GuestLayer>();
  /** cache disks claimed by a start that has not registered its VM yet */
  private readonly cacheClaims = new Set<string>();
  /** whether each VM's session disk was made by this start or was there already (a warning if the guest then finds it empty) */
  private readonly sessionDiskState = new Map<string, 'created' | 'existing'>();
  private readonly buildAbort = new AbortController();
  private probe: Promise<AcceleratorProbe> | undefined;
  private readonly watchdog = new Watchdog();
  private shuttingDown: Promise<void> | undefined;
  private readonly verdicts: AcceleratorVerdicts;
  private readonly bootTimes: BootTimes;
  private readonly cacheDir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: ServerOptions) {
    this.env = opts.env ?? process.env;
    this.cacheDir = opts.cacheDir ?? defaultCacheDir(this.env);
    this.verdicts = AcceleratorVerdicts.inCache(this.cacheDir);
    this.bootTimes = BootTimes.inCache(this.cacheDir);
  }

  get watchdogPid(): number | undefined {
    return this.watchdog.pid;
  }

  private emit(ev: VmHostEvent): void {
    this.opts.send(ev);
  }

  private log(level: 'info' | 'warn' | 'error' | 'debug' | 'trace', message: string): void {
    this.emit({ event: 'log', level, message });
  }

  async handleLine(line: string): Promise<void> {
    let id = -1;
    try {
      const req = RequestLine.parse(JSON.parse(line));
      id = req.id;
      if (!(req.method in Requests)) throw new VmHostError('bad-request', `Unknown method ${req.method}`);
      const method = req.method as RequestName;
      const parsed = Requests[method][0].safeParse(req.params ?? {});
      if (!parsed.success) throw new VmHostError('bad-request', `Invalid ${method} parameters: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      const result = await this.dispatch({ method, params: parsed.data } as Dispatch);
      this.opts.send({ id, ok: true, result });
    } catch (err) {
      const code = err instanceof VmHostError ? err.code : 'internal';
      const message = err instanceof Error ? err.message : String(err);
      if (code === 'internal') this.log('error', `request failed: ${err instanceof Error ? (err.stack ?? message) : message}`);
      this.opts.send({ id, ok: false, error: { code, message } });
    }
  }

  private async dispatch(req: Dispatch): Promise<unknown> {
    switch (req.method) {
      case 'hello': {
        const probe = await this.accelProbe();
        return { version: PROTOCOL_VERSION, platform: process.platform, arch: process.arch, accelerators: availableAccelerators(probe), pid: process.pid } satisfies RequestResult<'hello'>;
      }
      case 'image.ensure': {
        const { force } = req.params;
        if (force) this.imagePromise = undefined;
        const image = await this.image(force);
        return { key: image.key, kernelVersion: image.kernelVersion, built: image.built } satisfies RequestResult<'image.ensure'>;
      }
      case 'vm.start':
        return this.startVm(req.params);
      case 'vm.stop': {
        const { vmId, graceMs } = req.params;
        const vm = this.vms.get(vmId);
        if (!vm) {
          if (!this.starting.has(vmId)) return { stopped: false };
          this.cancelledStarts.add(vmId); // the start checks this before it boots
          return { stopped: true };
        }
        await vm.stop(graceMs);
        if (this.vms.get(vmId) === vm) this.vms.delete(vmId);
        return { stopped: true };
      }
      case 'vm.list': {
        const vms = await Promise.all(
          [...this.vms.values()].map(async (vm) => ({
            vmId: vm.params.vmId,
            state: vm.stateKind,
            pid: vm.pid,
            ...(vm.pid ? await processStats(vm.pid) : {}),
            sessionDiskBytes: await allocatedBytes(vm.params.sessionDisk),
            ...(vm.cacheDisk ? { cacheDisk: vm.cacheDisk, cacheDiskBytes: await allocatedBytes(vm.cacheDisk) } : {}),
          })),
        );
        return { vms };
      }
      case 'disks.cleanup': {
        const { dir, keep } = req.params;
        const inUse = [...this.vms.values()].filter((vm) => path.dirname(vm.params.sessionDisk) === path.resolve(dir)).map((vm) => path.basename(vm.params.sessionDisk));
        return cleanupDisks(dir, [...keep, ...inUse]);
      }
      case 'shutdown':
        await this.shutdown();
        return {};
      case 'doctor':
        return this.doctor(req.params);
    }
  }

  async doctor(p: RequestParams<'doctor'>): Promise<RequestResult<'doctor'>> {
    const lines: DoctorLine[] = await runDoctor({
      cacheDir: this.cacheDir,
      sources: this.opts.sources,
      arch: hostArch(),
      qemuBinary: qemuBinaryFor(this.env),
      probe: () => this.accelProbe(),
      verdicts: this.verdicts,
      bootTimes: this.bootTimes,
      reprobe: p.reprobe,
      sessionsDir: p.sessionsDir,
      guard: (pid, alive) => (alive ? this.watchdog.guard(pid) : this.watchdog.release(pid)),
    });
    return { ok: !lines.some((l) => l.required && !l.ok), lines };
  }

  private accelProbe(): Promise<AcceleratorProbe> {
    this.probe ??= (async () => {
      const qemu = qemuBinaryFor(this.env);
      const tools = await requireTools(qemuTools(qemu));
      return probeAccelerators(tools.get(qemu)!, this.env);
    })();
    this.probe.catch(() => (this.probe = undefined));
    return this.probe;
  }

  /**
   * The image, checked to be still on disk: another window's helper that built a newer recipe
   * removes outdated layers (builder.ts pruneOtherLayers), and a VM booted later from the paths
   * this helper remembered would fail ("error reading initrd"). Running VMs keep their open files.
   */
  private async currentImage(): Promise<GuestImage> {
    const image = await this.image();
    const present = await Promise.all([image.kernel, image.initrd, image.rootfs].map((f) => stat(f).then(() => true, () => false)));
    if (present.every(Boolean)) return image;
    this.log('info', '[image] the cached image was removed (a newer one was built elsewhere); checking the image again');
    this.imagePromise = undefined;
    return this.image();
  }

  private image(force?: boolean): Promise<GuestImage> {
    if (this.shuttingDown) return Promise.reject(new VmHostError('cancelled', 'The helper is shutting down.'));
    this.imagePromise ??= ensureImage({
      cacheDir: this.cacheDir,
      sources: this.opts.sources,
      arch: hostArch(),
      force,
      signal: this.buildAbort.signal,
      onProcessGroup: (pgid, alive) => {
        if (alive) this.watchdog.guard(-pgid);
        else this.watchdog.release(-pgid);
        this.log('debug', `[image] build process group ${pgid} ${alive ? 'started' : 'ended'}`);
      },
      onProgress: (p) => this.emit({ event: 'image.progress', phase: p.phase, message: p.message, fraction: p.fraction }),
      onLog: (line) => this.log('debug', line),
    });
    this.imagePromise.catch(() => (this.imagePromise = undefined));
    return this.imagePromise;
  }

  private async startVm(p: VmStartParams): Promise<RequestResult<'vm.start'>> {
    if (this.shuttingDown) throw new VmHostError('cancelled', 'The helper is shutting down.');
    // Reserve the id before the first await: a concurrent start of the same id fails right away.
    if (this.vms.has(p.vmId) || this.starting.has(p.vmId)) throw new VmHostError('vm-exists', `A VM named ${p.vmId} is already ${this.vms.has(p.vmId) ? 'running' : 'starting'}.`);
    this.starting.add(p.vmId);
    this.cancelledStarts.delete(p.vmId);
    try {
      return await this.prepareAndBoot(p);
    } finally {
      this.starting.delete(p.vmId);
      this.cancelledStarts.delete(p.vmId);
    }
  }

  private checkCancelled(vmId: string): void {
    if (this.cancelledStarts.has(vmId) || this.shuttingDown) throw new VmHostError('cancelled', `The start of ${vmId} was cancelled.`);
  }

  private async prepareAndBoot(p: VmStartParams): Promise<RequestResult<'vm.start'>> {
    await validateHostResources(p);
    const probe = await this.accelProbe();
    let accelerator = pickAccelerator(p.accelerator, probe);
    const baseImage = await this.currentImage();
    this.checkCancelled(p.vmId);
    const layer = p.guestLayer && !isEmptyLayerSpec(p.guestLayer) ? await this.guestLayer(baseImage, p.guestLayer) : undefined;
    this.checkCancelled(p.vmId);
    // the layer's root replaces the base's; the kernel, initramfs and key (accelerator verdicts) stay the base's
    const image: GuestImage = layer ? { ...baseImage, rootfs: layer.rootfs } : baseImage;
    let notice: string | undefined;
    if (p.accelerator === 'auto' && accelerator !== 'tcg' && (await this.verdicts.isUnusable(accelerator, image.key))) {
      const v = await this.verdicts.get(accelerator, image.key);
      notice = fallbackNotice(accelerator, v?.reason ?? 'it failed before');
      this.log('info', `[vm] ${notice} (remembered; the verdict expires in a week or with a new image)`);
      accelerator = 'tcg';
    }
    const qemuBinary = qemuBinaryFor(this.env);
    const tools = await requireTools([...qemuTools(qemuBinary), EGRESS_TOOL]);
    this.sessionDiskState.set(p.vmId, await ensureSessionDisk(tools.get('qemu-img')!, p.sessionDisk, p.diskGiB));
    this.checkCancelled(p.vmId);
    const cacheDisk = p.cacheDisk ? await this.claimCacheDisk(tools.get('qemu-img')!, p) : undefined;
    try {
      const info = await this.bootWithFallback(p, image, accelerator, qemuBinary, notice, cacheDisk);
      return {
        ...info,
        ...(layer ? { guestLayer: { key: layer.key, built: layer.built } } : {}),
        ...(p.cacheDisk ? { cacheDiskAttached: cacheDisk !== undefined } : {}),
      };
    } finally {
      if (cacheDisk) this.cacheClaims.delete(cacheDisk); // the VM (if it runs) holds it from now: see claimCacheDisk
    }
  }

  /**
   * The package-cache disk for this start, or undefined when another VM holds it (a second task of
   * the same workspace at the same time): that task runs without the cache.
   */
  private async claimCacheDisk(qemuImg: string, p: VmStartParams): Promise<string | undefined> {
    const file = path.resolve(p.cacheDisk!);
    const held = (): boolean => this.cacheClaims.has(file) || [...this.vms.values()].some((vm) => vm.cacheDisk && path.resolve(vm.cacheDisk) === file);
    if (held()) {
      this.log('info', `[vm] ${p.vmId}: the package cache ${file} is in use by another task; starting without it`);
      return undefined;
    }
    this.cacheClaims.add(file);
    try {
      const state = await ensureCacheDisk(qemuImg, file, p.cacheDiskGiB);
      if (state === 'in-use') {
        this.log('info', `[vm] ${p.vmId}: the package cache ${file} is locked by another VM; starting without it`);
        this.cacheClaims.delete(file);
        return undefined;
      }
      return file;
    } catch (err) {
      this.cacheClaims.delete(file);
      throw err;
    }
  }

  private async guestLayer(base: GuestImage, spec: NonNullable<VmStartParams['guestLayer']>): Promise<GuestLayer> {
    const id = `${base.key}:${JSON.stringify(spec)}`;
    // verified once per helper (hashing the whole squashfs costs seconds); still there on disk?
    const known = this.verifiedLayers.get(id);
    if (known && (await stat(known.rootfs).then(() => true, () => false))) return { ...known, built: false };
    let pending = this.layers.get(id);
    if (!pending) {
      pending = ensureGuestLayer({
        cacheDir: this.cacheDir,
        sources: this.opts.sources,
        base,
        spec,
        signal: this.buildAbort.signal,
        onProcessGroup: (pgid, alive) => {
          if (alive) this.watchdog.guard(-pgid);
          else this.watchdog.release(-pgid);
          this.log('debug', `[layer] build process group ${pgid} ${alive ? 'started' : 'ended'}`);
        },
        onProgress: (pr) => this.emit({ event: 'image.progress', phase: pr.phase, message: pr.message, fraction: pr.fraction }),
        onLog: (line) => this.log('debug', line),
      })
        .then((layer) => (this.verifiedLayers.set(id, layer), layer))
        .finally(() => this.layers.delete(id));
      this.layers.set(id, pending);
    }
    return pending;
  }

  private async bootWithFallback(p: VmStartParams, image: GuestImage, accelerator: ResolvedAccelerator, qemuBinary: string, notice: string | undefined, cacheDisk: string | undefined): Promise<RequestResult<'vm.start'>> {
    // Under auto, a failed hardware attempt is not reported as the VM's state: the TCG boot follows.
    const fallbackPossible = p.accelerator === 'auto' && accelerator !== 'tcg';
    let heldBack: string | undefined;
    try {
      const info = await this.bootVm(p, image, accelerator, qemuBinary, fallbackPossible ? (error) => (heldBack = error) : undefined, cacheDisk);
      if (notice) this.emit({ event: 'vm.notice', vmId: p.vmId, message: notice });
      return notice ? { ...info, notice } : info;
    } catch (err) {
      if (!(err instanceof VmHostError && err.code === 'accelerator-unusable')) {
        if (heldBack !== undefined) this.emit({ event: 'vm.state', vmId: p.vmId, state: 'failed', detail: heldBack });
        throw err;
      }
      if (p.accelerator !== 'auto') throw new VmHostError('accelerator-unusable', unusableMessage(accelerator, err.message), { cause: err });
      notice = fallbackNotice(accelerator, err.message);
      this.log('warn', `[vm] ${notice}`);
      this.emit({ event: 'vm.notice', vmId: p.vmId, message: notice });
      this.checkCancelled(p.vmId);
      const info = await this.bootVm(p, image, 'tcg', qemuBinary, undefined, cacheDisk);
      // TCG got further than the accelerator did: the accelerator was the problem. Remember it.
      await this.verdicts.markUnusable(accelerator, image.key, err.message);
      return { ...info, notice };
    }
  }

  /** holdBackFailure: a boot failure is handed to it instead of sent as a vm.state event */
  private async bootVm(p: VmStartParams, image: GuestImage, accelerator: ResolvedAccelerator, qemuBinary: string, holdBackFailure?: (error: string) => void, cacheDisk?: string): Promise<RequestResult<'vm.start'>> {
    const { timeoutMs, lastBootMs } = await this.bootTimes.timeoutFor(accelerator);
    let wasReady = false;
    const vm: Vm = new Vm(p, {
      driver: qemuDriver,
      image,
      qemuBinary,
      accelerator,
      watchdog: this.watchdog,
      bootTimeoutMs: timeoutMs,
      cacheDisk,
      onState: (state, detail) => {
        if (state.kind === 'failed' && !wasReady && holdBackFailure) holdBackFailure(state.error);
        else this.emit({ event: 'vm.state', vmId: p.vmId, state: state.kind, detail: state.kind === 'failed' ? state.error : detail });
        if (state.kind === 'ready') wasReady = true;
        if (state.kind === 'failed' && wasReady) this.lost(vm, state.error);
      },
      onConsole: (line) => {
        if (line.includes('COWORK-NOTE: session-disk-formatted') && this.sessionDiskState.get(p.vmId) === 'existing') {
          this.log('warn', `[vm] ${p.vmId}: its session disk ${p.sessionDisk} existed but held no file system, so the guest formatted it: changes kept there before are gone`);
        }
        this.emit({ event: 'vm.console', vmId: p.vmId, line });
      },
      onProgress: (step, elapsedMs, tMs) => this.emit({ event: 'vm.progress', vmId: p.vmId, accelerator, step, elapsedMs, timeoutMs: tMs }),
      signOfLifeMs: this.opts.signOfLifeMs,
    });
    this.vms.set(p.vmId, vm);
    this.log('info', `[vm] starting ${p.vmId} with ${accelerator} (${p.cpus} cpus, ${p.memoryMiB} MiB; boot time-out ${Math.round((p.bootTimeoutMs ?? timeoutMs) / 1000)} s${lastBootMs ? `, last boot ${(lastBootMs / 1000).toFixed(1)} s` : ''})`);
    try {
      this.checkCancelled(p.vmId); // a vm.stop that came while the start was being prepared
      const info = await vm.start();
      await this.bootTimes.record(accelerator, info.bootMs).catch(() => undefined);
      if (accelerator !== 'tcg') await this.verdicts.markUsable(accelerator, image.key, `a VM booted in ${(info.bootMs / 1000).toFixed(1)} s`).catch(() => undefined);
      return info;
    } catch (err) {
      if (this.vms.get(p.vmId) === vm) this.vms.delete(p.vmId);
      throw err;
    }
  }

  /** A ready VM went away by itself: unregister it (the same id can start again) and clean up. */
  private lost(vm: Vm, reason: string): void {
    if (this.vms.get(vm.params.vmId) !== vm) return;
    this.vms.delete(vm.params.vmId);
    this.log('warn', `[vm] ${vm.params.vmId} stopped unexpectedly: ${reason}`);
    void vm.cleanupAfterExit();
  }

  /** Stops every VM and the image build, bounded by SHUTDOWN_DEADLINE_MS; releases the watchdog. */
  shutdown(deadlineMs = SHUTDOWN_DEADLINE_MS): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.buildAbort.abort();
      const vms = [...this.vms.values()];
      const work = Promise.allSettled([...vms.map((vm) => vm.stop()), this.imagePromise ?? Promise.resolve()]);
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([work.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), deadlineMs)))]);
      clearTimeout(timer);
      this.vms.clear();
      if (late) this.log('warn', `[vm] shutdown took longer than ${deadlineMs} ms; killing what is left`);
      // Closing the watchdog's pipe makes it SIGKILL whatever is still registered (nothing, unless late).
      this.watchdog.close();
    })();
    return this.shuttingDown;
  }
}

type Dispatch = { [N in RequestName]: { method: N; params: RequestParams<N> } }[RequestName];

export async function validateHostResources(p: VmStartParams): Promise<void> {
  if (!path.isAbsolute(p.workspace)) throw new VmHostError('workspace-missing', `The workspace path must be absolute: ${p.workspace}`);
  try {
    const st = await stat(p.workspace);
    if (!st.isDirectory()) throw new VmHostError('workspace-missing', `The workspace ${p.workspace} is not a folder.`);
  } catch (err) {
    if (err instanceof VmHostError) throw err;
    throw new VmHostError('workspace-missing', `The workspace folder ${p.workspace} does not exist. Open an existing folder and try again.`);
  }
  const hostMiB = Math.floor(os.totalmem() / 1024 / 1024);
  if (p.memoryMiB > hostMiB) {
    throw new VmHostError('bad-config', `cowork.vm.memoryMiB is ${p.memoryMiB} MiB but this host has only ${hostMiB} MiB of memory. Lower cowork.vm.memoryMiB (0 picks a size from the host's memory).`);
  }
  const hostCpus = os.cpus().length;
  if (p.cpus > hostCpus) throw new VmHostError('bad-config', `cowork.vm.cpus is ${p.cpus} but this host has ${hostCpus} CPUs. Lower cowork.vm.cpus.`);
}
