// Waiting in tests: on a condition with a deadline that names what it waited for (never a fixed
// sleep), and the processes a test must see gone.
import { execFileSync } from 'node:child_process';

/** Polls `cond` every 100 ms until it holds; fails after `timeoutMs` naming `what`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pids whose command line matches `pattern` (pgrep -f), this process excluded. */
export function pgrep(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number).filter((p) => p !== process.pid);
  } catch {
    return [];
  }
}
