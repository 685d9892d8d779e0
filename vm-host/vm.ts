// One guest VM: its QEMU process, its per-VM keys, its lifecycle. Boot is "ready" when the guest's
// init prints COWORK-READY on the serial console (after sshd is listening), so the extension's
// first SSH connection does not have to poll.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ResolvedAccelerator, VmConnectInfo, VmStartParams } from '../extension/protocol/vmHost';
import type { MachineConfig, VmDriver } from './drivers/driver';
import { VmHostError } from './errors';
import type { GuestImage } from './image/builder';
import { generateEd25519 } from './sshKeys';
import { transition, type VmEvent, type VmState } from './vmState';
import type { Watchdog } from './watchdog';

export const BOOT_TIMEOUT_MS = { tcg: 180_000, hardware: 30_000 } as const;
export const STOP_GRACE_MS = 3_000;
/**
 * With a hardware accelerator the guest's init speaks within a second or two. Some hosts expose a
 * /dev/kvm whose guests never get past the firmware (nested or paravirtual KVM such as PVM); when
 * nothing is heard from the guest by then, the boot fails with code 'accelerator-unusable' so that
 * "auto" can fall back to TCG instead of waiting out the whole boot timeout.
 */
export const HW_SIGN_OF_LIFE_MS = 20_000;
const CONSOLE_TAIL_LINES = 40;

export interface VmDeps {
  readonly driver: VmDriver;
  readonly image: GuestImage;
  readonly accelerator: ResolvedAccelerator;
  readonly watchdog: Watchdog;
  readonly onState: (state: VmState, detail?: string) => void;
  readonly onConsole: (line: string) => void;
  readonly signOfLifeMs?: number;
}

export class Vm {
  private state: VmState = { kind: 'stopped' };
  private qemu: ChildProcess | undefined;
  private runtimeDir: string | undefined;
  private readonly consoleTail: string[] = [];
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

      const timeoutMs = this.params.bootTimeoutMs ?? (this.deps.accelerator === 'tcg' ? BOOT_TIMEOUT_MS.tcg : BOOT_TIMEOUT_MS.hardware);
      let port = 0;
      for (let attempt = 1; ; attempt++) {
        port = await freePort();
        try {
          await this.boot(port, files, timeoutMs);
          break;
        } catch (err) {
          // Another process may take the port between our probe and QEMU's bind: try a new one.
          if (attempt < 3 && /host forwarding rule|Could not set up host forwarding/i.test(this.stderr)) continue;
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
      await this.kill();
      const message = err instanceof Error ? err.message : String(err);
      if (this.state.kind !== 'failed') this.apply({ type: 'fail', error: message }, message);
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
      workspace: this.params.workspace,
      sshPort: port,
      fwCfgFiles: files,
    };
    this.stderr = '';
    this.consoleTail.length = 0;
    const [cmd, args] = qemuCommand(this.deps.image.qemuBinary, this.deps.driver.argv(config), this.sandbox!);
    const qemu = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.qemu = qemu;
    if (qemu.pid) this.deps.watchdog.guard(qemu.pid);
    this.exited = new Promise((resolve) => qemu.once('close', () => resolve()));
    qemu.stdin.on('error', () => undefined);

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
      const lifeTimer =
        this.deps.accelerator !== 'tcg'
          ? setTimeout(() => {
              if (!heardGuest) settle(new VmHostError('accelerator-unusable', `The guest showed no sign of life within ${HW_SIGN_OF_LIFE_MS / 1000} s with ${this.deps.accelerator}: this host's ${this.deps.accelerator} cannot run the guest kernel.`));
            }, this.deps.signOfLifeMs ?? HW_SIGN_OF_LIFE_MS)
          : undefined;
      const timer = setTimeout(() => {
        settle(new VmHostError('boot-timeout', `The VM did not become ready within ${Math.round(timeoutMs / 1000)} s (accelerator ${this.deps.accelerator}). Last console lines:\n${this.consoleTail.slice(-10).join('\n')}`));
      }, timeoutMs);
      let rest = '';
      qemu.stdout.on('data', (chunk: Buffer) => {
        rest += chunk.toString('utf8');
        const lines = rest.split(/\r?\n/);
        rest = lines.pop() ?? '';
        for (const raw of lines) {
          const line = raw.replace(/\r/g, '');
          if (!line) continue;
          this.consoleTail.push(line);
          if (this.consoleTail.length > CONSOLE_TAIL_LINES) this.consoleTail.shift();
          this.deps.onConsole(line);
          if (line.includes('COWORK-')) heardGuest = true;
          if (line.includes('COWORK-READY')) settle();
          const failed = /COWORK-INIT-FAILED: (.*)/.exec(line);
          if (failed) settle(new VmHostError('boot-failed', `The guest failed to start: ${failed[1]}`));
          if (/Kernel panic/.test(line)) settle(new VmHostError('boot-failed', `The guest kernel panicked: ${line}`));
        }
      });
      qemu.stderr.on('data', (chunk: Buffer) => {
        this.stderr += chunk.toString('utf8');
        if (this.stderr.length > 16_384) this.stderr = this.stderr.slice(-16_384);
      });
      qemu.on('error', (err) => settle(new VmHostError('boot-failed', `Cannot start ${this.deps.image.qemuBinary}: ${err.message}`, { cause: err })));
      qemu.on('close', (code, signal) => {
        if (qemu.pid) this.deps.watchdog.release(qemu.pid);
        if (!settled) {
          settle(new VmHostError('boot-failed', `QEMU exited during boot (${signal ?? `code ${code}`}): ${this.stderr.trim() || this.consoleTail.slice(-5).join('\n')}`));
        } else if (this.qemu === qemu && (this.state.kind === 'ready' || this.state.kind === 'stopping' || this.state.kind === 'booting')) {
          this.apply({ type: 'exited' }, this.stderr.trim() || undefined);
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
