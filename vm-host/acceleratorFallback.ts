// When may "auto" give up on a hardware accelerator and boot the guest under TCG instead?
// On any failure before the guest's first sign of life (its first COWORK- console line):
//  - QEMU exits or aborts (QEMU 7.2 on a paravirtual KVM: "error: failed to set MSR 0x10a to …",
//    then "kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed." and SIGABRT);
//  - QEMU writes an error line on stderr (an ioctl failure, "Could not access KVM kernel module",
//    "failed to initialize kvm: Permission denied"), even if it keeps running;
//  - the guest stays silent (a stock kernel that hangs early on such a host; see HW_SIGN_OF_LIFE_MS).
// Warnings ("host doesn't support requested feature …") are not failures. A port clash on the
// forwarded sshd port is not the accelerator's fault: the helper retries on another port.
// These functions are pure so the decision is unit-tested (test/unit/qemu.test.ts).
import type { ResolvedAccelerator } from '../extension/protocol/vmHost';

export type StderrLineKind = 'ignore' | 'port-in-use' | 'error';

export function classifyStderrLine(line: string): StderrLineKind {
  const l = line.trim();
  if (!l) return 'ignore';
  if (/host forwarding rule|Could not set up host forwarding/i.test(l)) return 'port-in-use';
  if (/\bwarning:/i.test(l)) return 'ignore';
  // our own SIGTERM/SIGKILL at stop: not a failure of the accelerator
  if (/terminating on signal/i.test(l)) return 'ignore';
  return 'error';
}

/** The first error line of QEMU's stderr, without the "qemu-system-x86_64: " prefix. */
export function firstErrorLine(stderr: string): string | undefined {
  for (const line of stderr.split(/\r?\n/)) {
    if (classifyStderrLine(line) !== 'error') continue;
    return oneLine(line.trim().replace(/^qemu-system-[\w-]+:\s*/, ''));
  }
  return undefined;
}

export interface EarlyExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Why QEMU could not run under the hardware accelerator, in one line. */
export function earlyExitReason(exit: EarlyExit): string {
  const line = firstErrorLine(exit.stderr);
  const how = exit.signal ? `QEMU was killed by ${exit.signal}` : `QEMU exited with code ${exit.code}`;
  return line ? `${line} (${how})` : how;
}

export function silenceReason(accel: ResolvedAccelerator, silentMs: number): string {
  return `the guest showed no sign of life within ${Math.round(silentMs / 1000)} s under ${accelName(accel)}`;
}

export function accelName(accel: ResolvedAccelerator): string {
  return accel === 'kvm' ? 'KVM' : accel === 'hvf' ? 'HVF' : accel === 'whpx' ? 'WHPX' : 'TCG';
}

/** The notice "auto" shows when it falls back: "KVM is present but QEMU could not use it: … — running emulated, slower". */
export function fallbackNotice(accel: ResolvedAccelerator, reason: string): string {
  return `${accelName(accel)} is present but QEMU could not use it: ${oneLine(reason)} — running emulated, slower`;
}

/** The error of an explicit hardware accelerator that failed the same way. */
export function unusableMessage(accel: ResolvedAccelerator, reason: string): string {
  return `${accelName(accel)} is present but QEMU could not use it: ${oneLine(reason)}. Set cowork.vm.accelerator to "auto" to run emulated (slower), or run "Cowork: Check Setup".`;
}

function oneLine(s: string, max = 240): string {
  const l = s.replace(/\s+/g, ' ').trim();
  return l.length > max ? `${l.slice(0, max - 1)}…` : l;
}
