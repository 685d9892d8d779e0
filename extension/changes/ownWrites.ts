// When Cowork itself last wrote each host file (an accept, a partial accept), so that a file the
// agent changes again afterwards is not taken for one the person edited (a false conflict). Kept
// in the task's storage so a window reload remembers; an unreadable file only costs false alarms.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { hostMtime } from './apply';

export class OwnWrites {
  private readonly times = new Map<string, number>();
  private loaded: Promise<void> | undefined;

  constructor(private readonly file: string) {}

  load(): Promise<void> {
    this.loaded ??= fs
      .readFile(this.file, 'utf8')
      .then((text) => {
        const saved = JSON.parse(text) as unknown;
        if (saved && typeof saved === 'object') for (const [k, v] of Object.entries(saved)) if (typeof v === 'number') this.times.set(k, Math.max(v, this.times.get(k) ?? 0));
      })
      .catch(() => undefined); // nothing accepted yet, or unreadable: start empty
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
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    await fs.writeFile(`${this.file}.tmp`, JSON.stringify(Object.fromEntries(this.times)));
    await fs.rename(`${this.file}.tmp`, this.file);
  }
}
