// When Cowork itself last wrote each host file (an accept, a partial accept), so that a file the
// agent changes again afterwards is not taken for one the person edited (a false conflict). Kept
// in the task's storage so a window reload remembers; an unreadable file only costs false alarms.
import { z } from 'zod';
import { ignoreProblems, readJsonState, writeJsonAtomic, type StateReporter } from '../state/stateFiles';
import { hostMtime } from './apply';

const Saved = z.record(z.string(), z.number());

export class OwnWrites {
  private readonly times = new Map<string, number>();
  private loaded: Promise<void> | undefined;

  constructor(
    private readonly file: string,
    private readonly report: StateReporter = ignoreProblems,
  ) {}

  load(): Promise<void> {
    // nothing accepted yet, or unreadable (moved aside and reported by the state module): start empty
    this.loaded ??= readJsonState(this.file, (v) => Saved.parse(v), this.report)
      .then((saved) => {
        for (const [k, v] of Object.entries(saved ?? {})) this.times.set(k, Math.max(v, this.times.get(k) ?? 0));
      })
      .catch(() => undefined);
    return this.loaded;
  }

  /** Host edits after this time count as the person's: `base` (the task's start) or our last write. */
  since(rel: Buffer, base: number): number {
    return Math.max(base, this.times.get(rel.toString('base64')) ?? 0);
  }

  /** Remembers that Cowork just wrote these files; one save for all of them. */
  async record(workspace: string, rels: readonly Buffer[]): Promise<void> {
    if (!rels.length) return;
    await this.load();
    for (const rel of rels) this.times.set(rel.toString('base64'), Math.max(Date.now(), await hostMtime(workspace, rel)));
    await writeJsonAtomic(this.file, Object.fromEntries(this.times));
  }
}
