// Picks the best accelerator the host has: KVM on Linux, HVF on macOS, WHPX on Windows, and TCG
// (software emulation, slow) everywhere as the fallback. An explicit choice that is not available
// is an error, not a silent fallback: the person asked for it.
// Test-only override: COWORK_TEST_FAKE_KVM=1 makes the probe report a usable /dev/kvm and a QEMU
// with kvm (on Linux), so the fallback from a failing hardware accelerator can be tested on a
// machine without KVM (test/faults/vm-host.test.ts, with a wrapper QEMU via COWORK_QEMU_BINARY).
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Accelerator, ResolvedAccelerator } from '../../extension/protocol/vmHost';
import { VmHostError } from '../errors';

export interface AcceleratorProbe {
  readonly platform: NodeJS.Platform;
  /** accelerators this QEMU binary was built with (`-accel help`) */
  readonly qemuAccels: readonly string[];
  readonly kvmUsable: boolean;
}

export function availableAccelerators(p: AcceleratorProbe): ResolvedAccelerator[] {
  const out: ResolvedAccelerator[] = [];
  if (p.platform === 'linux' && p.kvmUsable && p.qemuAccels.includes('kvm')) out.push('kvm');
  if (p.platform === 'darwin' && p.qemuAccels.includes('hvf')) out.push('hvf');
  if (p.platform === 'win32' && p.qemuAccels.includes('whpx')) out.push('whpx');
  if (p.qemuAccels.includes('tcg')) out.push('tcg');
  return out;
}

export function pickAccelerator(wanted: Accelerator, p: AcceleratorProbe): ResolvedAccelerator {
  const available = availableAccelerators(p);
  if (wanted === 'auto') {
    const best = available[0];
    if (!best) throw new VmHostError('accelerator-unavailable', 'This QEMU offers no accelerator at all (not even tcg). Reinstall qemu-system.');
    return best;
  }
  if (available.includes(wanted)) return wanted;
  const hint =
    wanted === 'kvm' && p.platform === 'linux'
      ? ' /dev/kvm is missing or not accessible: enable virtualization in the firmware, load kvm_intel/kvm_amd, and add yourself to the kvm group.'
      : '';
  throw new VmHostError(
    'accelerator-unavailable',
    `The accelerator '${wanted}' is not available on this ${p.platform} host (available: ${available.join(', ') || 'none'}).${hint} Set cowork.vm.accelerator to "auto".`,
  );
}

export async function probeAccelerators(qemuBinary: string, env: NodeJS.ProcessEnv = process.env): Promise<AcceleratorProbe> {
  const qemuAccels = await new Promise<string[]>((resolve) => {
    execFile(qemuBinary, ['-accel', 'help'], { timeout: 10_000 }, (err, stdout) => {
      if (err) return resolve([]);
      resolve(stdout.split('\n').slice(1).map((s) => s.trim()).filter(Boolean));
    });
  });
  let kvmUsable = false;
  if (process.platform === 'linux') {
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
      kvmUsable = true;
    } catch {
      kvmUsable = false;
    }
  }
  if (env.COWORK_TEST_FAKE_KVM === '1' && process.platform === 'linux') return { platform: process.platform, qemuAccels: [...new Set([...qemuAccels, 'kvm'])], kvmUsable: true };
  return { platform: process.platform, qemuAccels, kvmUsable };
}
