// The boot time-out is relative to this host: the helper records how long the last successful boot
// took per accelerator (boot-times.json in the cache dir, next to the accelerator verdicts) and
// allows BOOT_TIMEOUT_FACTOR times that, never less than a floor. A fixed time-out is wrong on
// one machine or another: a TCG boot takes ~5 s on a quiet desktop and well over 30 s on two cores
// shared with other VMs (docs/benchmarks.md); before any measurement a generous first time-out holds.
import type { ResolvedAccelerator } from '../extension/protocol/vmHost';
import { readJsonFile, writeJsonAtomic } from './jsonFile';
import * as path from 'node:path';

export const BOOT_TIMEOUT_FACTOR = 6;
/** never less than this, whatever was measured */
export const MIN_BOOT_TIMEOUT_MS = { tcg: 60_000, hardware: 30_000 } as const;
/** before this host has a measurement (first boot, new cache) */
export const FIRST_BOOT_TIMEOUT_MS = { tcg: 300_000, hardware: 60_000 } as const;

export function bootTimeoutMs(accel: ResolvedAccelerator, lastBootMs: number | undefined): number {
  const kind = accel === 'tcg' ? 'tcg' : 'hardware';
  if (lastBootMs === undefined || !Number.isFinite(lastBootMs) || lastBootMs <= 0) return FIRST_BOOT_TIMEOUT_MS[kind];
  return Math.max(MIN_BOOT_TIMEOUT_MS[kind], Math.round(BOOT_TIMEOUT_FACTOR * lastBootMs));
}

interface BootRecord {
  readonly bootMs: number;
  readonly at: number;
}

export class BootTimes {
  constructor(private readonly file: string) {}

  static inCache(cacheDir: string): BootTimes {
    return new BootTimes(path.join(cacheDir, 'boot-times.json'));
  }

  async last(accel: ResolvedAccelerator): Promise<number | undefined> {
    const all = await readJsonFile<Record<string, BootRecord>>(this.file, {});
    const r = all[accel];
    return r && typeof r.bootMs === 'number' ? r.bootMs : undefined;
  }

  async record(accel: ResolvedAccelerator, bootMs: number): Promise<void> {
    const all = await readJsonFile<Record<string, BootRecord>>(this.file, {});
    all[accel] = { bootMs, at: Date.now() };
    await writeJsonAtomic(this.file, all);
  }

  async timeoutFor(accel: ResolvedAccelerator): Promise<{ timeoutMs: number; lastBootMs?: number }> {
    const lastBootMs = await this.last(accel);
    return { timeoutMs: bootTimeoutMs(accel, lastBootMs), lastBootMs };
  }
}
