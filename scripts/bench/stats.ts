import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

export function fmtBytes(b: number | undefined): string {
  return b === undefined ? 'n/a' : `${(b / 1048576).toFixed(0)} MiB`;
}

export interface Row {
  readonly what: string;
  readonly value: string;
  readonly note?: string;
}

export function printTable(title: string, rows: readonly Row[]): void {
  const w = Math.max(...rows.map((r) => r.what.length));
  console.log(`\n## ${title}`);
  for (const r of rows) console.log(`${r.what.padEnd(w)}  ${r.value}${r.note ? `   (${r.note})` : ''}`);
}

// ---- figures a script can read: .test-work/bench.json ------------------------------------------
//
// Every figure a bench prints is also recorded under a stable id ("<group>.<what>[.<unit>]", e.g.
// `cmd.sandboxed.ratio`). The file is a map from id to figure, merged run by run, so a partial run
// (`npm run bench -- --only proxy.`) keeps the others; each figure says when, on which accelerator
// and at which commit it was measured. To add a figure: call `figure(...)` next to the row it
// prints, with a new id; docs/benchmarks.md is generated from this file (scripts/bench.mjs --table).

export type Unit = 'us' | 'ms' | 's' | 'MiB/s' | 'x' | '%' | 'MiB' | 'count' | 'bool';

export interface Figure {
  readonly value: number;
  readonly unit: Unit;
  /** the goal from the issue that set it, or null; `goalIs` says which side of it is good */
  readonly goal: number | null;
  readonly goalIs?: 'max' | 'min';
  readonly what: string;
  readonly date: string;
  readonly accelerator: string;
  readonly commit: string;
  readonly host: string;
}

export const BENCH_JSON = path.resolve(__dirname, '..', '..', '.test-work', 'bench.json');

/** COWORK_TEST_ACCEL=tcg forces emulation (a broken /dev/kvm never stalls the bench); default auto. */
export function benchAccelerator(): 'tcg' | 'auto' {
  return process.env.COWORK_TEST_ACCEL === 'tcg' ? 'tcg' : 'auto';
}

/** True when this run wants figures under `prefix` (`npm run bench -- --only <prefix>` sets BENCH_ONLY). */
export function wants(prefix: string): boolean {
  const only = process.env.BENCH_ONLY;
  return !only || only.split(',').some((o) => prefix.startsWith(o) || o.startsWith(prefix));
}

let commitCache: string | undefined;
function commit(): string {
  if (commitCache === undefined) {
    try {
      const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: path.dirname(BENCH_JSON), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: path.dirname(BENCH_JSON), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      commitCache = dirty ? `${head}+dirty` : head;
    } catch {
      commitCache = 'unknown';
    }
  }
  return commitCache;
}

const pending: Record<string, Figure> = {};
let acceleratorUsed = process.env.COWORK_TEST_ACCEL ?? 'auto';

/** The accelerator the figures were measured on (the VM reports it after start). */
export function setAccelerator(a: string): void {
  acceleratorUsed = a;
}

/** Records one figure; written to bench.json by `saveFigures()`. */
export function figure(id: string, value: number, unit: Unit, what: string, goal: number | null = null, goalIs: 'max' | 'min' = 'max'): void {
  if (!/^[a-z0-9]+(\.[a-z0-9]+)+$/.test(id)) throw new Error(`bad figure id ${id} (lower-case words joined by dots)`);
  if (!Number.isFinite(value)) throw new Error(`figure ${id} is not a finite number: ${value}`);
  pending[id] = { value: Number(value.toFixed(unit === 'x' ? 3 : 2)), unit, goal, ...(goal === null ? {} : { goalIs }), what, date: new Date().toISOString(), accelerator: acceleratorUsed, commit: commit(), host: `${os.platform()}-${os.arch()}, ${os.cpus().length} cpus` };
}

/** Merges this run's figures into .test-work/bench.json (write to a temporary file, then rename). */
export function saveFigures(): void {
  if (Object.keys(pending).length === 0) return;
  mkdirSync(path.dirname(BENCH_JSON), { recursive: true });
  let all: Record<string, Figure> = {};
  try {
    all = JSON.parse(readFileSync(BENCH_JSON, 'utf8')) as Record<string, Figure>;
  } catch {
    // first run, or an unreadable file: start again
  }
  Object.assign(all, pending);
  const sorted = Object.fromEntries(Object.keys(all).sort().map((k) => [k, all[k]!]));
  const tmp = `${BENCH_JSON}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(sorted, null, 2) + '\n');
  renameSync(tmp, BENCH_JSON);
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
