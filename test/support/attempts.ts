// Security attempts: each attack on the review boundary, the egress proxy or the settings is run
// through attempt(), which prints "attempt <name>: blocked|ESCAPED" and appends a record to the
// run's attempts file; scripts/test.mjs adds up every record of a run (whatever suite or process
// made it) into the closing line "security attempts: N, blocked: N, succeeded: N".
//
// The attack function performs the attack and asserts that the defence held (node:assert). If it
// throws, the attempt counts as ESCAPED and the error is rethrown so the test fails too: an
// unexpected error is never taken for a blocked attack.
import { appendFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

export const ATTEMPTS_FILE = process.env.COWORK_ATTEMPTS_FILE ?? path.resolve(__dirname, '..', '..', '.test-work', 'security-attempts.jsonl');

export interface AttemptRecord {
  readonly name: string;
  readonly blocked: boolean;
  /** the suite or file the attempt belongs to, e.g. "egress", "accept" */
  readonly area: string;
  readonly error?: string;
}

export function recordAttempt(rec: AttemptRecord, print = true): void {
  if (print) console.log(`attempt ${rec.area}/${rec.name}: ${rec.blocked ? 'blocked' : 'ESCAPED'}`);
  mkdirSync(path.dirname(ATTEMPTS_FILE), { recursive: true });
  appendFileSync(ATTEMPTS_FILE, JSON.stringify(rec) + '\n');
}

export async function attempt(area: string, name: string, attack: () => Promise<void> | void): Promise<void> {
  try {
    await attack();
  } catch (err) {
    recordAttempt({ area, name, blocked: false, error: err instanceof Error ? err.message : String(err) });
    throw err;
  }
  recordAttempt({ area, name, blocked: true });
}

/** Lines "attempt <area>/<name>: blocked|ESCAPED" printed by another process (the in-host Mocha suite) → records. */
export function recordAttemptLines(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/^attempt ([^/\s]+)\/(.+): (blocked|ESCAPED)\s*$/gm)) {
    recordAttempt({ area: m[1]!, name: m[2]!, blocked: m[3] === 'blocked' }, false);
    n++;
  }
  return n;
}
