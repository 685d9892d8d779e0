// Everything that happens in a task, as events: what the panel renders, what is persisted (JSONL in
// the extension's global storage, one file per task), and what a reloaded window rebuilds the
// conversation from to continue with a follow-up.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { TranscriptEvent, type PlanItem, type Usage } from '../protocol/transcript';

export { PlanItem, TranscriptEvent, Usage } from '../protocol/transcript';
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type NewEvent = DistributiveOmit<TranscriptEvent, 'at'>;

export class TranscriptStore {
  private readonly events: TranscriptEvent[] = [];
  private writing: Promise<void> = Promise.resolve();

  private constructor(readonly file: string) {}

  /** Opens (or creates) a task's transcript; invalid lines (a torn last write) are skipped. */
  static async open(file: string): Promise<TranscriptStore> {
    const store = new TranscriptStore(file);
    await mkdir(path.dirname(file), { recursive: true });
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch {
      // new task
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        store.events.push(TranscriptEvent.parse(JSON.parse(line)));
      } catch {
        // skip a torn or foreign line rather than lose the task
      }
    }
    return store;
  }

  get all(): readonly TranscriptEvent[] {
    return this.events;
  }

  append(event: NewEvent): TranscriptEvent {
    const full = TranscriptEvent.parse({ ...event, at: Date.now() });
    this.events.push(full);
    const line = JSON.stringify(full) + '\n';
    this.writing = this.writing.then(() => appendFile(this.file, line, { mode: 0o600 }));
    return full;
  }

  /** Resolves when every appended event is on disk. */
  flush(): Promise<void> {
    return this.writing;
  }

  totals(): Usage & { costUsd: number } {
    const t = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0, costUsd: 0 };
    for (const e of this.events) {
      if (e.type !== 'usage') continue;
      t.input += e.usage.input;
      t.output += e.usage.output;
      t.cacheWrite += e.usage.cacheWrite;
      t.cacheRead += e.usage.cacheRead;
      t.costUsd += e.costUsd;
    }
    return t;
  }

  plan(): PlanItem[] {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.type === 'plan') return e.items;
    }
    return [];
  }
}
