// Everything that happens in a task, as events: what the panel renders, what is persisted (JSONL in
// the extension's global storage, one file per task), and what a reloaded window rebuilds the
// conversation from to continue with a follow-up. Written through extension/state (a damaged file
// is moved aside and its readable events kept; a failed append is reported and retried).
import { ignoreProblems, JsonlJournal, type StateReporter } from '../state/stateFiles';
import { TranscriptEvent, type PlanItem, type Usage } from '../protocol/transcript';

export { PlanItem, TranscriptEvent, Usage } from '../protocol/transcript';
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type NewEvent = DistributiveOmit<TranscriptEvent, 'at'>;

export class TranscriptStore {
  private constructor(
    private readonly journal: JsonlJournal<TranscriptEvent>,
    private readonly events: TranscriptEvent[],
  ) {}

  /** Opens (or creates) a task's transcript; a file with unreadable lines is moved aside and its readable events kept. */
  static async open(file: string, report: StateReporter = ignoreProblems): Promise<TranscriptStore> {
    const { journal, entries } = await JsonlJournal.open(file, (v) => TranscriptEvent.parse(v), report);
    return new TranscriptStore(journal, entries);
  }

  get file(): string {
    return this.journal.file;
  }

  get all(): readonly TranscriptEvent[] {
    return this.events;
  }

  append(event: NewEvent): TranscriptEvent {
    const full = TranscriptEvent.parse({ ...event, at: Date.now() });
    this.events.push(full);
    this.journal.append(full);
    return full;
  }

  /** Resolves when every appended event has been attempted (a failed one is retried with the next). */
  flush(): Promise<void> {
    return this.journal.flush();
  }

  /** Events not yet on disk (a failed append holds them until the next one succeeds). */
  get unwritten(): number {
    return this.journal.pending;
  }

  /** Usage since the person's last message: the current turn, which the token budget counts. */
  turnTotals(): Usage {
    const t = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.type === 'user') break;
      if (e.type !== 'usage') continue;
      t.input += e.usage.input;
      t.output += e.usage.output;
      t.cacheWrite += e.usage.cacheWrite;
      t.cacheRead += e.usage.cacheRead;
    }
    return t;
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
