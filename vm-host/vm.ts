// One guest VM: its QEMU process, its per-VM keys, its lifecycle. Boot is "ready" when the guest's
// init prints COWORK-READY on the serial console (after sshd is listening), so the extension's
// first SSH connection does not have to poll. Its COWORK-STEP lines are reported as progress.
// Under a hardware accelerator, any failure before the guest's first COWORK- line (QEMU exiting,
// an error on its stderr, silence) fails the boot with 'accelerator-unusable' and a one-line
// reason, so that "auto" can fall back to TCG (vm-host/acceleratorFallback.ts).
// A VM that dies once ready (QEMU killed, guest panic, OOM) becomes 'failed' with the reason.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { egressSocketPaths } from '../extension/egress/hostSockets';
import type { ResolvedAccelerator, VmConnectInfo, VmStartParams } from '../extension/protocol/vmHost';
import { classifyStderrLine, earlyExitReason, firstErrorLine, silenceReason } from './acceleratorFallback';
import type { MachineConfig, VmDriver } from './drivers/driver';
import { VmHostError } from './errors';
import type { GuestImage } from './image/builder';
import { generateEd25519 } from './sshKeys';
import { transition, type VmEvent, type VmState } from './vmState';
import type { Watchdog } from './watchdog';

/** used when the caller passes no time-out (the server passes one relative to this host: vm-host/bootTimes.ts) */
export const DEFAULT_BOOT_TIMEOUT_MS = 300_000;
export const STOP_GRACE_MS = 3_000;
/**
 * With a hardware accelerator the guest's init speaks within a second or two. Some hosts expose a
 * /dev/kvm whose guests never get past the firmware (nested or paravirtual KVM such as PVM; this
 * is what the development machines do: SeaBIOS runs, the kernel never prints); when nothing is
 * heard from the guest by then, the boot fails with code 'accelerator-unusable' so that "auto"
 * can fall back to TCG instead of waiting out the whole boot timeout.
 */
export const HW_SIGN_OF_LIFE_MS = 20_000;
const CONSOLE_TAIL_LINES = 40;

export interface VmDeps {
  readonly driver: VmDriver;
  readonly image: GuestImage;
  /** the QEMU program (COWORK_QEMU_BINARY or the recipe's) */
  readonly qemuBinary: string;
  readonly accelerator: ResolvedAccelerator;
  readonly watchdog: Watchdog;
  readonly onState: (state: VmState, detail?: string) => void;
  readonly onConsole: (line: string) => void;
  /** the guest's current boot step ("kernel", then its COWORK-STEP names) */
  readonly onProgress?: (step: string, elapsedMs: number, timeoutMs: number) => void;
  readonly signOfLifeMs?: number;
  /** the package-cache disk to attach (params.cacheDisk unless another VM holds it) */
  readonly cacheDisk?: string;
  /** boot time-out when params.bootTimeoutMs is not given */
  readonly bootTimeoutMs?: number;
}

export class Vm {
  private state: VmState = { kind: 'stopped' };
  private qemu: ChildProcess | undefined;
  private runtimeDir: string | undefined;
  private readonly consoleTail: string[] = [];
  /** The first "Kernel panic" line since boot: kept apart from the tail, which the panic's own
   * stack dump (often more than CONSOLE_TAIL_LINES lines) pushes it out of. */
  private panicLine: string | undefined;
  private stderr = '';
  private exited: Promise<void> = Promise.resolve();
  private sandbox: SandboxIdentity | undefined;

  constructor(
    readonly params: VmStartParams,
    private readonly deps: VmDeps,
  ) {}

  get stateKind(): VmState['kind'] {
    return this.state.kind;
  }
  /** the package-cache disk this VM holds, if one is attached */
  get cacheDisk(): string | undefined {
    return this.deps.cacheDisk;
  }
  get pid(): number | undefined {
    return this.qemu?.pid;
  }

  private apply(event: VmEvent, detail?: string): void {
    const next = transition(this.state, event);
    if (next !== this.state) {
      this.state = next;
      this.deps.onState(next, detail);
    }
  }

  async start(): Promise<VmConnectInfo> {
    this.apply({ type: 'start', at: Date.now() });
    const t0 = Date.now();
    try {
      this.runtimeDir = await mkdtemp(path.join(os.tmpdir(), `cowork-vm-${this.params.vmId}-`));
      this.deps.watchdog.removeOnExit(this.runtimeDir);
      const hostKey = generateEd25519(`cowork-guest-${this.params.vmId}`);
      const clientKey = generateEd25519(`cowork-host-${this.params.vmId}`);
      const files = {
        host_key: path.join(this.runtimeDir, 'host_key'),
        authorized_keys: path.join(this.runtimeDir, 'authorized_keys'),
        options: path.join(this.runtimeDir, 'options'),
      };
      await writeFile(files.host_key, hostKey.private, { mode: 0o600 });
      await writeFile(files.authorized_keys, clientKey.public + '\n', { mode: 0o600 });
      const sandbox = sandboxIdentity(this.params.vmId);
      this.sandbox = sandbox;
      await writeFile(files.options, `sandbox_user=${sandbox.user}\nsandbox_uid=${sandbox.uid}\n`, { mode: 0o600 });

      const timeoutMs = this.params.bootTimeoutMs ?? this.deps.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
      let port = 0;
      for (let attempt = 1; ; attempt++) {
        port = await freePort();
        try {
          await this.boot(port, files, timeoutMs);
          break;
        } catch (err) {
          // Another process may take the port between our probe and QEMU's bind: try a new one.
          if (attempt < 3 && this.stderr.split('\n').some((l) => classifyStderrLine(l) === 'port-in-use')) continue;
          throw err;
        }
      }
      const bootMs = Date.now() - t0;
      this.apply({ type: 'booted', at: Date.now() });
      return {
        vmId: this.params.vmId,
        host: '127.0.0.1',
        port,
        username: 'root',
        privateKey: clientKey.private,
        hostKey: hostKey.public.split(' ').slice(0, 2).join(' '),
        accelerator: this.deps.accelerator,
        bootMs,
        imageKey: this.deps.image.key,
        cpus: this.params.cpus,
        memoryMiB: this.params.memoryMiB,
        sandbox,
      };
    } catch (err) {
      // the boot's own error is the state's reason (not the SIGKILL that follows); a stop that
      // came during the boot finishes in stop()
      const message = err instanceof Error ? err.message : String(err);
      if (this.state.kind === 'booting') this.apply({ type: 'fail', error: message }, message);
      await this.kill();
      throw err;
    }
  }

  private boot(port: number, files: Record<string, string>, timeoutMs: number): Promise<void> {
    const config: MachineConfig = {
      qemuBinary: this.deps.image.qemuBinary,
      accelerator: this.deps.accelerator,
      cpus: this.params.cpus,
      memoryMiB: this.params.memoryMiB,
      kernel: this.deps.image.kernel,
      kernelFormat: this.deps.image.kernelFormat,
      initrd: this.deps.image.initrd,
      rootfs: this.deps.image.rootfs,
      sessionDisk: this.params.sessionDisk,
      cacheDisk: this.deps.cacheDisk,
      workspace: this.params.workspace,
      sshPort: port,
      // socat is a required host tool (hostTools.ts), found on the PATH QEMU inherits
      egress: { socat: 'socat', ...egressSocketPaths(this.params.vmId) },
      fwCfgFiles: files,
    };
    this.stderr = '';
    this.consoleTail.length = 0;
    this.panicLine = undefined;
    const accel = this.deps.accelerator;
    const hw = accel !== 'tcg';
    const [cmd, args] = qemuCommand(this.deps.qemuBinary, this.deps.driver.argv(config), this.sandbox!);
    const t0 = Date.now();
    const qemu = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.qemu = qemu;
    if (qemu.pid) this.deps.watchdog.guard(qemu.pid);
    this.exited = new Promise((resolve) => qemu.once('close', () => resolve()));
    qemu.stdin.on('error', () => undefined);
    const progress = (step: string): void => this.deps.onProgress?.(step, Date.now() - t0, timeoutMs);
    progress('kernel');

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(lifeTimer);
        if (err) reject(err);
        else resolve();
      };
      let heardGuest = false;
      const signOfLifeMs = this.deps.signOfLifeMs ?? HW_SIGN_OF_LIFE_MS;
      const lifeTimer = hw
        ? setTimeout(() => {
            if (!heardGuest) settle(new VmHostError('accelerator-unusable', silenceReason(accel, signOfLifeMs)));
          }, signOfLifeMs)
        : undefined;
      const timer = setTimeout(() => {
        settle(new VmHostError('boot-timeout', `The VM did not become ready within ${Math.round(timeoutMs / 1000)} s (accelerator ${accel}; the time-out is ${BOOT_TIMEOUT_RULE}). Last console lines:\n${this.consoleTail.slice(-10).join('\n')}`));
      }, timeoutMs);
      lineSplitter(qemu.stdout, (raw) => {
        const line = raw.replace(/\r/g, '');
        if (!line) return;
        this.consoleTail.push(line);
        if (this.consoleTail.length > CONSOLE_TAIL_LINES) this.consoleTail.shift();
        if (this.panicLine === undefined && /Kernel panic/.test(line)) this.panicLine = line;
        this.deps.onConsole(line);
        if (line.includes('COWORK-')) heardGuest = true;
        const step = /COWORK-STEP: (\S+)/.exec(line);
        if (step && !settled) progress(step[1]!);
        if (line.includes('COWORK-READY')) settle();
        const failed = /COWORK-INIT-FAILED: (.*)/.exec(line);
        if (failed) settle(new VmHostError('boot-failed', `The guest failed to start: ${failed[1]}`));
        if (/Kernel panic/.test(line)) settle(new VmHostError('boot-failed', `The guest kernel panicked: ${line}`));
      });
      lineSplitter(qemu.stderr, (line) => {
        this.stderr = (this.stderr + line + '\n').slice(-16_384);
        // Under a hardware accelerator an error before the guest spoke means QEMU cannot use it.
        if (hw && !heardGuest && classifyStderrLine(line) === 'error') settle(new VmHostError('accelerator-unusable', firstErrorLine(line) ?? line.trim()));
      });
      qemu.on('error', (err) => settle(new VmHostError('boot-failed', `Cannot start ${this.deps.qemuBinary}: ${err.message}`, { cause: err })));
      qemu.on('close', (code, signal) => {
        if (qemu.pid) this.deps.watchdog.release(qemu.pid);
        if (!settled) {
          if (this.state.kind === 'stopping') settle(new VmHostError('cancelled', 'The VM was stopped while it booted.'));
          else if (hw && !heardGuest) settle(new VmHostError('accelerator-unusable', earlyExitReason({ code, signal, stderr: this.stderr })));
          else settle(new VmHostError('boot-failed', `QEMU exited during boot (${signal ?? `code ${code}`}): ${this.stderr.trim() || this.consoleTail.slice(-5).join('\n')}`));
        } else if (this.qemu === qemu && (this.state.kind === 'ready' || this.state.kind === 'stopping' || this.state.kind === 'booting')) {
          const reason = this.state.kind === 'stopping' ? undefined : exitReason(code, signal, this.panicLine === undefined ? this.consoleTail : [this.panicLine, ...this.consoleTail], this.stderr);
          this.apply({ type: 'exited', reason }, reason);
        }
      });
    });
  }

  /** Graceful stop: SIGTERM lets QEMU flush the qcow2; SIGKILL after graceMs. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (this.state.kind === 'stopped' || this.state.kind === 'failed') {
      await this.cleanupRuntime();
      return;
    }
    this.apply({ type: 'stop', at: Date.now() });
    const qemu = this.qemu;
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGTERM');
      const timer = setTimeout(() => qemu.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.state.kind === 'stopping') this.apply({ type: 'exited' });
    await this.cleanupRuntime();
  }

  /** QEMU went away by itself (the state is already 'failed'): remove the runtime dir. */
  async cleanupAfterExit(): Promise<void> {
    await this.exited;
    await this.cleanupRuntime();
  }

  private async kill(): Promise<void> {
    const qemu = this.qemu;
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGKILL');
      await this.exited;
    }
    await this.cleanupRuntime();
  }

  private async cleanupRuntime(): Promise<void> {
    if (!this.runtimeDir) return;
    const dir = this.runtimeDir;
    this.runtimeDir = undefined;
    await rm(dir, { recursive: true, force: true });
    this.deps.watchdog.keepDir(dir);
  }
}

export const BOOT_TIMEOUT_RULE = 'relative to this host: see vm-host/bootTimes.ts';

/** Why a VM that was up went away, in one line: a panic on the console, QEMU's error, or the signal. */
export function exitReason(code: number | null, signal: NodeJS.Signals | null, consoleTail: readonly string[], stderr: string): string {
  const panic = consoleTail.find((l) => /Kernel panic/.test(l));
  if (panic) return `the guest kernel panicked (${panic.replace(/^\[[^\]]*\]\s*/, '').trim()})`;
  const oom = consoleTail.find((l) => /Out of memory|oom-kill/i.test(l));
  if (signal) return `QEMU was killed by ${signal}${oom ? ` (${oom.trim()})` : ''}`;
  const err = stderr.split('\n').map((l) => l.trim()).find((l) => classifyStderrLine(l) === 'error');
  if (code !== 0) return `QEMU exited with code ${code}${err ? `: ${err}` : ''}`;
  return 'the guest powered off';
}

/** Calls onLine for each complete line of a stream (a partial last line is flushed at the end). */
function lineSplitter(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8'); // decodes a multi-byte character split across chunks correctly
  stream.on('data', (chunk: string) => {
    rest += chunk;
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
  stream.on('end', () => {
    if (rest) onLine(rest);
    rest = '';
  });
}

export interface SandboxIdentity {
  /** the guest user every sandboxed command runs as: a generated name, never root */
  readonly user: string;
  readonly uid: number;
}

/**
 * The sandbox user's uid must own the workspace files as the guest sees them through 9p, or the
 * sandbox could not write them. A normal host user's files carry its uid, so the sandbox gets that
 * uid. When the host user is root (containers, CI), giving the sandbox uid 0 is out of the
 * question: QEMU runs in a user namespace that maps root to a generated unprivileged uid instead
 * (see qemuCommand), and the sandbox gets that uid. Stable per VM id, so a task's files on its
 * session disk stay its own across restarts.
 */
export function sandboxIdentity(vmId: string, hostUid = process.getuid?.() ?? 1000): SandboxIdentity {
  const h = createHash('sha256').update(vmId).digest();
  const user = `cw-${h.subarray(0, 4).toString('hex')}`;
  const uid = hostUid === 0 ? 10_000 + (h.readUInt32BE(4) % 50_000) : hostUid;
  return { user, uid: Math.max(uid, 1000) };
}

/** Runs QEMU directly, or (host user root on Linux) inside a user namespace mapping root → the sandbox uid. */
export function qemuCommand(qemuBinary: string, argv: string[], sandbox: SandboxIdentity, platform = process.platform, hostUid = process.getuid?.()): [string, string[]] {
  if (platform === 'linux' && hostUid === 0) return ['unshare', ['--user', `--map-user=${sandbox.uid}`, `--map-group=${sandbox.uid}`, '--', qemuBinary, ...argv]];
  return [qemuBinary, argv];
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
