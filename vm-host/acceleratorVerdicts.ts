// Remembers, across helper processes, that an accelerator the host offers could not run this
// guest image (see HW_SIGN_OF_LIFE_MS), so "auto" does not spend the probe time on every start.
// A verdict is tied to the image key and expires, so a fixed host or a new kernel is tried again.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { ResolvedAccelerator } from '../extension/protocol/vmHost';

export const VERDICT_TTL_MS = 7 * 24 * 3600 * 1000;

interface Verdict {
  readonly imageKey: string;
  readonly at: number;
  readonly reason: string;
}

export class AcceleratorVerdicts {
  constructor(private readonly file: string) {}

  static inCache(cacheDir: string): AcceleratorVerdicts {
    return new AcceleratorVerdicts(path.join(cacheDir, 'unusable-accelerators.json'));
  }

  private async read(): Promise<Record<string, Verdict>> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as Record<string, Verdict>;
    } catch {
      return {};
    }
  }

  async isUnusable(accel: ResolvedAccelerator, imageKey: string, now = Date.now()): Promise<boolean> {
    const v = (await this.read())[accel];
    return !!v && v.imageKey === imageKey && now - v.at < VERDICT_TTL_MS;
  }

  async markUnusable(accel: ResolvedAccelerator, imageKey: string, reason: string): Promise<void> {
    const all = await this.read();
    all[accel] = { imageKey, at: Date.now(), reason };
    await mkdir(path.dirname(this.file), { recursive: true });
    await writeFile(this.file, JSON.stringify(all, null, 2));
  }
}
