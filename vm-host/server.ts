// The helper's request handler: validates every request, owns every VM, and tears them all down
// when its parent goes away.
import { stat } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  PROTOCOL_VERSION,
  Requests,
  RequestLine,
  type RequestName,
  type RequestResult,
  type ResolvedAccelerator,
  type VmHostEvent,
  type VmStartParams,
} from '../extension/protocol/vmHost';
import { AcceleratorVerdicts } from './acceleratorVerdicts';
import { availableAccelerators, pickAccelerator, probeAccelerators, type AcceleratorProbe } from './drivers/accelerator';
import { qemuDriver } from './drivers/qemu';
import { cleanupDisks, ensureSessionDisk } from './disks';
import { VmHostError } from './errors';
import { qemuTools, requireTools } from './hostTools';
import { ensureImage, type GuestImage } from './image/builder';
import { defaultCacheDir } from './image/cacheDir';
import { hostArch, type RecipeSources } from './image/recipe';
import { allocatedBytes, processStats } from './stats';
import { Vm } from './vm';
import { Watchdog } from './watchdog';

export interface ServerOptions {
  readonly send: (line: object) => void;
  readonly sources: RecipeSources;
  readonly cacheDir?: string;
  /** see HW_SIGN_OF_LIFE_MS */
  readonly signOfLifeMs?: number;
}

export class VmHostServer {
  private readonly vms = new Map<string, Vm>();
  private imagePromise: Promise<GuestImage> | undefined;
  private probe: Promise<AcceleratorProbe> | undefined;
  private readonly watchdog = new Watchdog();
  private shuttingDown: Promise<void> | undefined;
  private readonly verdicts: AcceleratorVerdicts;

  constructor(private readonly opts: ServerOptions) {
    this.verdicts = AcceleratorVerdicts.inCache(opts.cacheDir ?? defaultCacheDir());
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
      const result = await this.dispatch(method, parsed.data);
      this.opts.send({ id, ok: true, result });
    } catch (err) {
      const code = err instanceof VmHostError ? err.code : 'internal';
      const message = err instanceof Error ? err.message : String(err);
      if (code === 'internal') this.log('error', `request failed: ${err instanceof Error ? (err.stack ?? message) : message}`);
      this.opts.send({ id, ok: false, error: { code, message } });
    }
  }

  private async dispatch(method: RequestName, params: unknown): Promise<unknown> {
    switch (method) {
      case 'hello': {
        const probe = await this.accelProbe();
        return { version: PROTOCOL_VERSION, platform: process.platform, arch: process.arch, accelerators: availableAccelerators(probe), pid: process.pid } satisfies RequestResult<'hello'>;
      }
      case 'image.ensure': {
        const { force } = params as { force?: boolean };
        if (force) this.imagePromise = undefined;
        const image = await this.image(force);
        return { key: image.key, kernelVersion: image.kernelVersion, built: image.built } satisfies RequestResult<'image.ensure'>;
      }
      case 'vm.start':
        return this.startVm(params as VmStartParams);
      case 'vm.stop': {
        const { vmId, graceMs } = params as { vmId: string; graceMs?: number };
        const vm = this.vms.get(vmId);
        if (!vm) return { stopped: false };
        await vm.stop(graceMs);
        this.vms.delete(vmId);
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
          })),
        );
        return { vms };
      }
      case 'disks.cleanup': {
        const { dir, keep } = params as { dir: string; keep: string[] };
        const inUse = [...this.vms.values()].filter((vm) => path.dirname(vm.params.sessionDisk) === path.resolve(dir)).map((vm) => path.basename(vm.params.sessionDisk));
        return cleanupDisks(dir, [...keep, ...inUse]);
      }
      case 'shutdown':
        await this.shutdown();
        return {};
    }
  }

  private accelProbe(): Promise<AcceleratorProbe> {
    this.probe ??= (async () => {
      const arch = hostArch();
      const qemu = arch === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
      const tools = await requireTools(qemuTools(qemu));
      return probeAccelerators(tools.get(qemu)!);
    })();
    this.probe.catch(() => (this.probe = undefined));
    return this.probe;
  }

  private image(force?: boolean): Promise<GuestImage> {
    this.imagePromise ??= ensureImage({
      cacheDir: this.opts.cacheDir ?? defaultCacheDir(),
      sources: this.opts.sources,
      arch: hostArch(),
      force,
      onProgress: (p) => this.emit({ event: 'image.progress', phase: p.phase, message: p.message, fraction: p.fraction }),
      onLog: (line) => this.log('debug', line),
    });
    this.imagePromise.catch(() => (this.imagePromise = undefined));
    return this.imagePromise;
  }

  private async startVm(p: VmStartParams): Promise<RequestResult<'vm.start'>> {
    if (this.shuttingDown) throw new VmHostError('cancelled', 'The helper is shutting down.');
    if (this.vms.has(p.vmId)) throw new VmHostError('vm-exists', `A VM named ${p.vmId} is already running.`);
    await validateHostResources(p);
    const probe = await this.accelProbe();
    let accelerator = pickAccelerator(p.accelerator, probe);
    const image = await this.image();
    if (p.accelerator === 'auto' && accelerator !== 'tcg' && (await this.verdicts.isUnusable(accelerator, image.key))) {
      this.log('info', `[vm] ${accelerator} could not run this guest before; using tcg (the verdict expires in a week or with a new image)`);
      accelerator = 'tcg';
    }
    const tools = await requireTools(qemuTools(image.qemuBinary));
    await ensureSessionDisk(tools.get('qemu-img')!, p.sessionDisk, p.diskGiB);
    try {
      return await this.bootVm(p, image, accelerator);
    } catch (err) {
      if (!(err instanceof VmHostError && err.code === 'accelerator-unusable' && p.accelerator === 'auto')) throw err;
      await this.verdicts.markUnusable(accelerator, image.key, err.message);
      this.log('warn', `[vm] ${err.message} Falling back to tcg (software emulation, slow) for this session.`);
      return this.bootVm(p, image, 'tcg');
    }
  }

  private async bootVm(p: VmStartParams, image: GuestImage, accelerator: ResolvedAccelerator): Promise<RequestResult<'vm.start'>> {
    const vm = new Vm(p, {
      driver: qemuDriver,
      image,
      accelerator,
      watchdog: this.watchdog,
      onState: (state, detail) => this.emit({ event: 'vm.state', vmId: p.vmId, state: state.kind, detail: state.kind === 'failed' ? state.error : detail }),
      onConsole: (line) => this.emit({ event: 'vm.console', vmId: p.vmId, line }),
      signOfLifeMs: this.opts.signOfLifeMs,
    });
    this.vms.set(p.vmId, vm);
    this.log('info', `[vm] starting ${p.vmId} with ${accelerator} (${p.cpus} cpus, ${p.memoryMiB} MiB)`);
    try {
      return await vm.start();
    } catch (err) {
      this.vms.delete(p.vmId);
      throw err;
    }
  }

  /** Stops every VM (in parallel, each with its grace period) and releases the watchdog. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      await Promise.allSettled([...this.vms.values()].map((vm) => vm.stop()));
      this.vms.clear();
      this.watchdog.close();
    })();
    return this.shuttingDown;
  }
}

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
