// Fault injections: each fault of the fault suite (a killed QEMU, helper or extension host, a
// dropped connection, a full disk, a corrupt state file, a broken accelerator, a dropped model
// stream) runs through fault(area, name, check), which prints "fault <area>/<name>: survived|LOST";
// scripts/test.mjs adds the records of a run up into "faults: N, survived: N, lost: N". The check
// asserts what must hold afterwards: no orphan process, no host write beyond what was accepted,
// the change set unchanged by hash, a clear message, the task usable (see outcomes.ts).
import * as path from 'node:path';
import { outcomeRecorder, WORK_DIR } from './outcomes';

export const FAULTS_FILE = process.env.COWORK_FAULTS_FILE ?? path.join(WORK_DIR, 'faults.jsonl');

const faults = outcomeRecorder({ word: 'fault', file: FAULTS_FILE, field: 'survived', good: 'survived', bad: 'LOST' });

export const fault = (area: string, name: string, check: () => Promise<void> | void): Promise<void> => faults.run(area, name, check);

/** Lines "fault <area>/<name>: survived|LOST" printed by another process → records. */
export const recordFaultLines = (text: string): number => faults.fromLines(text);
