// Shared set-up for the VM suites: one vm-host helper (the bundled dist/vm-host.js, started like
// the extension starts it) and a fresh temporary workspace per test file.
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestVm } from '../../extension/guest/guestVm';
import { VmHostClient } from '../../extension/guest/vmHostClient';

export const ROOT = path.resolve(__dirname, '..', '..');
export const HELPER = path.join(ROOT, 'dist', 'vm-host.js');

export function vmResources(): { cpus: number; memoryMiB: number; diskGiB: number } {
  return { cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 4 };
}

export function startHelper(env: Record<string, string> = {}): VmHostClient {
  return new VmHostClient({ helperPath: HELPER, env, onLog: process.env.COWORK_TEST_VERBOSE ? (l, m) => console.error(`[${l}] ${m}`) : undefined });
}

export async function tempDir(prefix: string): Promise<{ dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `cowork-test-${prefix}-`));
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

export async function bootGuest(client: VmHostClient, workspace: string, sessionDir: string, vmId: string, extra: { diskGiB?: number } = {}): Promise<GuestVm> {
  return GuestVm.start(client, { vmId, workspace, sessionDisk: path.join(sessionDir, `${vmId}.qcow2`), accelerator: testAccelerator(), ...vmResources(), ...extra });
}

/** COWORK_TEST_ACCEL=tcg forces software emulation for a whole run (a broken /dev/kvm can then never stall a test); default auto. */
export function testAccelerator(env: NodeJS.ProcessEnv = process.env): 'tcg' | 'auto' {
  const v = env.COWORK_TEST_ACCEL ?? 'auto';
  if (v !== 'tcg' && v !== 'auto') throw new Error(`COWORK_TEST_ACCEL must be tcg or auto, not ${v}`);
  return v;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}
