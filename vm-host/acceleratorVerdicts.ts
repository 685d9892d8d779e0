// Remembers, across helper processes, whether a hardware accelerator the host offers could run
// this guest image: "auto" does not spend a failed attempt on every start, and Check Setup shows
// the result of its last probe. A verdict is tied to the image key and expires, so a fixed host
// or a new kernel is tried again. Written atomically (vm-host/jsonFile.ts).
import * as path from 'node:path';
import type { ResolvedAccelerator } from '../extension/protocol/vmHost';
import { readJsonFile, writeJsonAtomic } from './jsonFile';

export const VERDICT_TTL_MS = 7 * 24 * 3600 * 1000;

export interface Verdict {
  readonly imageKey: string;
  readonly at: number;
  /** absent in files written before usable verdicts existed: those only recorded failures */
  readonly usable?: boolean;
  readonly reason: string;
}

export class AcceleratorVerdicts {
  constructor(private readonly file: string) {}

  static inCache(cacheDir: string): AcceleratorVerdicts {
    return new AcceleratorVerdicts(path.join(cacheDir, 'unusable-accelerators.json'));
  }

  private read(): Promise<Record<string, Verdict>> {
    return readJsonFile<Record<string, Verdict>>(this.file, {});
  }

  /** The current (same image, not expired) verdict on accel, if any. */
  async get(accel: ResolvedAccelerator, imageKey: string, now = Date.now()): Promise<Verdict | undefined> {
    const v = (await this.read())[accel];
    return v && v.imageKey === imageKey && now - v.at < VERDICT_TTL_MS ? v : undefined;
  }

  async isUnusable(accel: ResolvedAccelerator, imageKey: string, now = Date.now()): Promise<boolean> {
    const v = await this.get(accel, imageKey, now);
    return !!v && v.usable !== true;
  }

  async markUnusable(accel: ResolvedAccelerator, imageKey: string, reason: string): Promise<void> {
    await this.set(accel, { imageKey, at: Date.now(), usable: false, reason });
  }

  async markUsable(accel: ResolvedAccelerator, imageKey: string, reason = 'booted'): Promise<void> {
    await this.set(accel, { imageKey, at: Date.now(), usable: true, reason });
  }

  private async set(accel: ResolvedAccelerator, v: Verdict): Promise<void> {
    const all = await this.read();
    all[accel] = v;
    await writeJsonAtomic(this.file, all);
  }
}
