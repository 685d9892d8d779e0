// One recorder for the outcomes a run adds up across suites and processes: security attempts
// (blocked | ESCAPED) and fault injections (survived | LOST). Each outcome is printed as
// "<word> <area>/<name>: <good|bad>" and appended as a JSON record to a file of the run, which
// scripts/test.mjs reads for its closing lines. The check function performs the attack or fault
// and asserts what must hold; if it throws, the outcome is bad and the error is rethrown, so an
// unexpected error is never taken for a success.
import { appendFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

export interface OutcomeKind {
  /** first word of the printed line: "attempt" | "fault" */
  readonly word: string;
  /** the JSONL file of the run */
  readonly file: string;
  /** the record's boolean field that scripts/test.mjs reads: "blocked" | "survived" */
  readonly field: string;
  readonly good: string;
  readonly bad: string;
}

export interface OutcomeRecorder {
  run(area: string, name: string, check: () => Promise<void> | void): Promise<void>;
  /** printed lines of another process (the in-host Mocha suite) → records; returns how many */
  fromLines(text: string): number;
}

export function outcomeRecorder(kind: OutcomeKind): OutcomeRecorder {
  const record = (area: string, name: string, ok: boolean, error?: string, print = true): void => {
    if (print) console.log(`${kind.word} ${area}/${name}: ${ok ? kind.good : kind.bad}`);
    mkdirSync(path.dirname(kind.file), { recursive: true });
    appendFileSync(kind.file, JSON.stringify({ area, name, [kind.field]: ok, ...(error === undefined ? {} : { error }) }) + '\n');
  };
  const line = new RegExp(`^${kind.word} ([^/\\s]+)\\/(.+): (${kind.good}|${kind.bad})\\s*$`, 'gm');
  return {
    async run(area, name, check) {
      try {
        await check();
      } catch (err) {
        record(area, name, false, err instanceof Error ? err.message : String(err));
        throw err;
      }
      record(area, name, true);
    },
    fromLines(text) {
      let n = 0;
      for (const m of text.matchAll(line)) {
        record(m[1]!, m[2]!, m[3] === kind.good, undefined, false);
        n++;
      }
      return n;
    },
  };
}

export const WORK_DIR = path.resolve(__dirname, '..', '..', '.test-work');
