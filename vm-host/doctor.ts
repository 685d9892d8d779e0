// Check Setup: one line per prerequisite of a VM start, with ✓/✗ and, on a failed line, the fix.
// `node dist/vm-host.js --doctor` prints them (exit code 1 when a required line fails); the
// helper's `doctor` request returns them to `Cowork: Check Setup`, which adds the extension's own
// lines (API key present, egress proxy able to listen). Each accelerator is actually probed with a
// tiny boot of the guest image (the kernel up to the initramfs' first line, "cowork.bare"), and the
// result is cached with the accelerator verdicts that "auto" uses.
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, stat, statfs } from 'node:fs/promises';
import * as path from 'node:path';
import { formatDoctorLine, type DoctorLine, type ResolvedAccelerator } from '../extension/protocol/vmHost';
import { accelName, classifyStderrLine, earlyExitReason, firstErrorLine, silenceReason } from './acceleratorFallback';
import type { AcceleratorVerdicts } from './acceleratorVerdicts';
import { BOOT_TIMEOUT_FACTOR, bootTimeoutMs, MIN_BOOT_TIMEOUT_MS, type BootTimes } from './bootTimes';
import { availableAccelerators, type AcceleratorProbe } from './drivers/accelerator';
import { kernelCmdline } from './drivers/qemu';
import { EGRESS_TOOL, IMAGE_BUILD_TOOLS, qemuTools, which } from './hostTools';
import { inspectImage } from './image/builder';
import type { GuestArch, RecipeSources } from './image/recipe';
import { HW_SIGN_OF_LIFE_MS } from './vm';

/** Free space below which a start is likely to fail (the image build alone needs ~600 MiB while it runs). */
export const MIN_FREE_BYTES = 1024 ** 3;
/** A TCG probe boot (kernel to init) takes ~3–10 s; this bounds it on a very slow host. */
export const TCG_PROBE_TIMEOUT_MS = 120_000;

export { formatDoctorLine };

/** Non-zero when a required line failed. */
export function doctorExitCode(lines: readonly DoctorLine[]): number {
  return lines.some((l) => l.required && !l.ok) ? 1 : 0;
}

export function formatBytes(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${Math.round(n / 1024 ** 2)} MiB`;
}

export function diskLine(id: string, label: string, dir: string, freeBytes: number | undefined, minBytes = MIN_FREE_BYTES): DoctorLine {
  if (freeBytes === undefined) return { id, ok: false, required: true, label, detail: `cannot read the free space of ${dir}`, fix: `make sure ${dir} (or its parent) exists and is readable` };
  const ok = freeBytes >= minBytes;
  return { id, ok, required: true, label, detail: `${formatBytes(freeBytes)} free in ${dir}`, fix: ok ? undefined : `free at least ${formatBytes(minBytes)} on that disk (Cowork: Clean Up removes unused session disks)` };
}

export interface ProbeResult {
  readonly ok: boolean;
  /** one line: why it failed, or how long the tiny boot took */
  readonly reason: string;
  readonly bootMs?: number;
}

export interface DoctorDeps {
  readonly cacheDir: string;
  readonly sources: RecipeSources;
  readonly arch: GuestArch;
  /** the QEMU program to use (COWORK_QEMU_BINARY or the recipe's) */
  readonly qemuBinary: string;
  readonly probe: () => Promise<AcceleratorProbe>;
  readonly verdicts: AcceleratorVerdicts;
  readonly bootTimes: BootTimes;
  readonly reprobe?: boolean;
  readonly sessionsDir?: string;
  /** registers a probe QEMU with the helper's watchdog */
  readonly guard?: (pid: number, alive: boolean) => void;
  readonly platform?: NodeJS.Platform;
}

export async function runDoctor(d: DoctorDeps): Promise<DoctorLine[]> {
  const lines: DoctorLine[] = [];
  const platform = d.platform ?? process.platform;
  const qemuTool = qemuTools(d.qemuBinary)[0]!;

  // QEMU and qemu-img
  const qemuPath = path.isAbsolute(d.qemuBinary) ? ((await isExecutable(d.qemuBinary)) ? d.qemuBinary : undefined) : await which(d.qemuBinary);
  if (!qemuPath) {
    lines.push({ id: 'qemu', ok: false, required: true, label: 'QEMU', detail: `${d.qemuBinary} not found`, fix: `sudo apt-get install ${qemuTool.aptPackage} (macOS: brew install qemu)` });
  } else {
    const version = await qemuVersion(qemuPath);
    lines.push(
      version
        ? { id: 'qemu', ok: true, required: true, label: 'QEMU', detail: `${version} (${qemuPath})` }
        : { id: 'qemu', ok: false, required: true, label: 'QEMU', detail: `${qemuPath} does not run (--version failed)`, fix: `reinstall ${qemuTool.aptPackage}` },
    );
  }
  const qemuImg = await which('qemu-img');
  lines.push(qemuImg ? { id: 'qemu-img', ok: true, required: true, label: 'qemu-img', detail: qemuImg } : { id: 'qemu-img', ok: false, required: true, label: 'qemu-img', detail: 'not found (it creates the session disks)', fix: 'sudo apt-get install qemu-utils' });
  const socat = await which(EGRESS_TOOL.command);
  lines.push(socat ? { id: 'socat', ok: true, required: true, label: 'socat', detail: socat } : { id: 'socat', ok: false, required: true, label: 'socat', detail: `not found (to ${EGRESS_TOOL.purpose})`, fix: `sudo apt-get install ${EGRESS_TOOL.aptPackage} (macOS: brew install socat)` });

  // /dev/kvm
  if (platform === 'linux') lines.push(await kvmDeviceLine());

  // the guest image, or the tools to build it
  let image: Awaited<ReturnType<typeof inspectImage>> | undefined;
  try {
    image = await inspectImage(d.cacheDir, d.sources, d.arch);
  } catch (err) {
    lines.push({ id: 'image', ok: false, required: true, label: 'guest image', detail: `cannot read the image recipe: ${err instanceof Error ? err.message : String(err)}`, fix: 'reinstall the extension' });
  }
  if (image) {
    const missing: string[] = [];
    for (const t of IMAGE_BUILD_TOOLS) if (!(await which(t.command))) missing.push(t.command);
    const pkgs = [...new Set(IMAGE_BUILD_TOOLS.filter((t) => missing.includes(t.command)).map((t) => t.aptPackage))].join(' ');
    if (image.state === 'ready') lines.push({ id: 'image', ok: true, required: true, label: 'guest image', detail: `${image.key} present and verified (${path.join(d.cacheDir, 'images')})` });
    else if (image.state === 'boot-missing' && !missing.includes('cpio')) lines.push({ id: 'image', ok: true, required: true, label: 'guest image', detail: 'base layer present and verified; the next start repacks its initramfs (seconds)' });
    else if (image.state === 'boot-missing') lines.push({ id: 'image', ok: false, required: true, label: 'guest image', detail: 'base layer present, but cpio (to pack the initramfs) is missing', fix: 'sudo apt-get install cpio' });
    else if (missing.length === 0) lines.push({ id: 'image', ok: true, required: true, label: 'guest image', detail: `${image.state === 'corrupt' ? 'the cached image is damaged' : 'not built yet'}; the next start builds it (mmdebstrap, tar2sqfs, cpio, xz present; one to a few minutes, ~150 MB)` });
    else lines.push({ id: 'image', ok: false, required: true, label: 'guest image', detail: `${image.state === 'corrupt' ? 'the cached image is damaged' : 'not built yet'} and the tools to build it are missing: ${missing.join(', ')}`, fix: `sudo apt-get install ${pkgs}` });
  }

  // free space for the image cache and the session disks
  lines.push(diskLine('disk-cache', 'disk space (image cache)', d.cacheDir, await freeBytes(d.cacheDir)));
  if (d.sessionsDir) lines.push(diskLine('disk-sessions', 'disk space (session disks)', d.sessionsDir, await freeBytes(d.sessionsDir)));

  // each accelerator, probed with a tiny boot (cached)
  if (qemuPath) {
    let probe: AcceleratorProbe | undefined;
    try {
      probe = await d.probe();
    } catch {
      probe = undefined;
    }
    const accels = probe ? availableAccelerators(probe) : [];
    if (!accels.includes('tcg')) lines.push({ id: 'accel-tcg', ok: false, required: true, label: 'accelerator TCG', detail: 'this QEMU offers no TCG (software emulation)', fix: `reinstall ${qemuTool.aptPackage}` });
    for (const accel of accels) lines.push(await accelLine(d, accel, image, qemuPath));
  }
  return lines;
}

async function accelLine(d: DoctorDeps, accel: ResolvedAccelerator, image: { key: string; kernel?: string; initrd?: string } | undefined, qemuPath: string): Promise<DoctorLine> {
  const id = `accel-${accel}`;
  const label = `accelerator ${accelName(accel)}`;
  const required = accel === 'tcg';
  const last = await d.bootTimes.last(accel);
  const lastText = `; VM boot time-out ${Math.round(bootTimeoutMs(accel, last) / 1000)} s (${last ? `${BOOT_TIMEOUT_FACTOR} × the last boot, ${(last / 1000).toFixed(1)} s, at least ${(accel === 'tcg' ? MIN_BOOT_TIMEOUT_MS.tcg : MIN_BOOT_TIMEOUT_MS.hardware) / 1000} s` : 'no boot measured yet'})`;
  if (!image?.kernel || !image.initrd) return { id, ok: true, required, label, detail: `offered by QEMU; not probed yet (no guest image)${lastText}` };
  const cached = d.reprobe ? undefined : await d.verdicts.get(accel, image.key);
  let result: ProbeResult;
  let when = '';
  if (cached && cached.usable !== undefined) {
    result = { ok: cached.usable, reason: cached.reason };
    when = ` (cached ${new Date(cached.at).toISOString().slice(0, 16).replace('T', ' ')} UTC)`;
  } else {
    result = await probeBoot(qemuPath, accel, image.kernel, image.initrd, d.guard);
    if (result.ok) await d.verdicts.markUsable(accel, image.key, result.reason);
    else await d.verdicts.markUnusable(accel, image.key, result.reason);
  }
  if (result.ok) return { id, ok: true, required, label, detail: `${result.reason}${when}${lastText}` };
  return {
    id,
    ok: false,
    required,
    label,
    detail: `QEMU could not use it: ${result.reason}${when}`,
    fix: required ? 'reinstall QEMU' : '"auto" runs the VM emulated (slower); for speed, fix the host\'s virtualization (nested or paravirtual KVM often cannot run a stock kernel)',
  };
}

/**
 * A tiny boot: the guest kernel up to the initramfs' first line ("cowork.bare" makes it print
 * COWORK-BARE-INIT and power off). Fails on the same evidence as a real boot: QEMU exiting, an
 * error on its stderr, or silence (vm-host/acceleratorFallback.ts).
 */
export function probeBoot(qemu: string, accel: ResolvedAccelerator, kernel: string, initrd: string, guard?: (pid: number, alive: boolean) => void, signOfLifeMs = HW_SIGN_OF_LIFE_MS): Promise<ProbeResult> {
  const hw = accel !== 'tcg';
  const argv = [
    '-nodefaults', '-no-user-config', '-nographic', '-machine', 'q35',
    '-accel', hw ? accel : 'tcg', '-cpu', hw ? 'host' : 'max', '-smp', '1', '-m', '256M',
    '-kernel', kernel, '-initrd', initrd, '-append', kernelCmdline({ accelerator: accel, extraCmdline: 'cowork.bare' }),
    '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
  ];
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(qemu, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) guard?.(child.pid, true);
    let stderr = '';
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: hw ? silenceReason(accel, signOfLifeMs) : `the tiny boot did not reach init within ${TCG_PROBE_TIMEOUT_MS / 1000} s` }), hw ? signOfLifeMs : TCG_PROBE_TIMEOUT_MS);
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out = (out + c.toString('utf8')).slice(-4096);
      if (out.includes('COWORK-BARE-INIT')) finish({ ok: true, reason: `a tiny boot reached the guest's init in ${((Date.now() - t0) / 1000).toFixed(1)} s`, bootMs: Date.now() - t0 });
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      const complete = stderr.slice(0, stderr.lastIndexOf('\n') + 1);
      if (hw && complete.split('\n').some((l) => classifyStderrLine(l) === 'error')) finish({ ok: false, reason: firstErrorLine(complete)! });
    });
    child.on('error', (err) => finish({ ok: false, reason: `cannot run ${qemu}: ${err.message}` }));
    child.on('close', (code, signal) => {
      if (child.pid) guard?.(child.pid, false);
      finish({ ok: false, reason: earlyExitReason({ code, signal, stderr }) });
    });
  });
}

async function kvmDeviceLine(): Promise<DoctorLine> {
  const base = { id: 'dev-kvm', required: false, label: '/dev/kvm' } as const;
  try {
    const st = await stat('/dev/kvm');
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
      return { ...base, ok: true, detail: `present, readable and writable by this user (mode ${(st.mode & 0o777).toString(8)})` };
    } catch {
      return { ...base, ok: false, detail: `present but not readable and writable by this user (mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid} gid ${st.gid}); VMs run emulated (slower)`, fix: 'sudo usermod -aG kvm "$USER", then log in again' };
    }
  } catch {
    return { ...base, ok: false, detail: 'missing; VMs run emulated (slower)', fix: 'enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd' };
  }
}

function qemuVersion(qemu: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(qemu, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      const m = /version\s+(\S+)/i.exec(stdout);
      resolve(m ? `QEMU ${m[1]}` : stdout.split('\n')[0]?.trim() || undefined);
    });
  });
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Free bytes on the filesystem of dir (created if missing, else its nearest existing parent). */
async function freeBytes(dir: string): Promise<number | undefined> {
  await mkdir(dir, { recursive: true }).catch(() => undefined);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const s = await statfs(d);
      return s.bavail * s.bsize;
    } catch {
      if (path.dirname(d) === d) return undefined;
    }
  }
}
