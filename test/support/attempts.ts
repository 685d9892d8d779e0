// Security attempts: each attack on the review boundary, the egress proxy or the settings is run
// through attempt(area, name, attack), which prints "attempt <area>/<name>: blocked|ESCAPED";
// scripts/test.mjs adds up every record of a run into "security attempts: N, blocked: N,
// succeeded: N". The attack asserts that the defence held (see outcomes.ts).
import * as path from 'node:path';
import { outcomeRecorder, WORK_DIR } from './outcomes';

export const ATTEMPTS_FILE = process.env.COWORK_ATTEMPTS_FILE ?? path.join(WORK_DIR, 'security-attempts.jsonl');

const attempts = outcomeRecorder({ word: 'attempt', file: ATTEMPTS_FILE, field: 'blocked', good: 'blocked', bad: 'ESCAPED' });

export const attempt = (area: string, name: string, attack: () => Promise<void> | void): Promise<void> => attempts.run(area, name, attack);

/** Lines "attempt <area>/<name>: blocked|ESCAPED" printed by another process (the in-host Mocha suite) → records. */
export const recordAttemptLines = (text: string): number => attempts.fromLines(text);
