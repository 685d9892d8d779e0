// Fault injections: each fault of the fault suite (a killed QEMU, helper or extension host, a
// dropped connection, a full disk, a corrupt state file, a broken accelerator, a dropped model
// stream) runs through fault(), which prints "fault <area>/<name>: survived|LOST" and appends a
// record to the run's faults file; scripts/test.mjs adds the records of a run up into the closing
// line "faults: N, survived: N, lost: N".
//
// The check function injects the fault and asserts what must hold afterwards: no orphan process,
// no host write beyond what was accepted, the change set unchanged (compared by hash), a clear
// message, the task usable. If it throws, the fault counts as LOST and the error is rethrown.
import { appendFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

export const FAULTS_FILE = process.env.COWORK_FAULTS_FILE ?? path.resolve(__dirname, '..', '..', '.test-work', 'faults.jsonl');

export interface FaultRecord {
  readonly area: string;
  readonly name: string;
  readonly survived: boolean;
  readonly error?: string;
}

export function recordFault(rec: FaultRecord, print = true): void {
  if (print) console.log(`fault ${rec.area}/${rec.name}: ${rec.survived ? 'survived' : 'LOST'}`);
  mkdirSync(path.dirname(FAULTS_FILE), { recursive: true });
  appendFileSync(FAULTS_FILE, JSON.stringify(rec) + '\n');
}

export async function fault(area: string, name: string, check: () => Promise<void> | void): Promise<void> {
  try {
    await check();
  } catch (err) {
    recordFault({ area, name, survived: false, error: err instanceof Error ? err.message : String(err) });
    throw err;
  }
  recordFault({ area, name, survived: true });
}

/** Lines "fault <area>/<name>: survived|LOST" printed by another process (the in-host suite) → records. */
export function recordFaultLines(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/^fault ([^/\s]+)\/(.+): (survived|LOST)\s*$/gm)) {
    recordFault({ area: m[1]!, name: m[2]!, survived: m[3] === 'survived' }, false);
    n++;
  }
  return n;
}
