// `npm run bench`: builds, makes sure the guest image exists, then prints every benchmark's figures
// and records them in .test-work/bench.json ({ "<figure id>": { value, unit, goal, what, date,
// accelerator, commit, host } }, merged run by run; scripts/bench/stats.ts `figure()`).
//   npm run bench -- --only <prefix>[,<prefix>]   only the benches that measure figures under it (e.g. proxy., cmd.)
//   npm run bench -- --table                      print bench.json as the Markdown table for docs/benchmarks.md
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { buildWithImage, ensureApt, ensureNpm, ROOT, runNode } from './setup.mjs';

/** Each bench and the id prefixes of the figures it records (a new figure needs a prefix listed here). */
const BENCHES = [
  { name: 'vm', prefixes: ['boot.', 'transport.loop', 'share.', 'memory.'] },
  { name: 'warm', prefixes: ['start.'] },
  { name: 'transport', prefixes: ['transport.'] },
  { name: 'sandbox', prefixes: ['cmd.', 'proxy.'] },
  { name: 'agent', prefixes: ['agent.', 'output.'] },
  { name: 'review', prefixes: ['review.'] },
  { name: 'workbench', prefixes: ['panel.', 'activation.'] },
];

const args = process.argv.slice(2);
const BENCH_JSON = path.join(ROOT, '.test-work', 'bench.json');

if (args.includes('--table')) {
  if (!existsSync(BENCH_JSON)) throw new Error(`${BENCH_JSON} does not exist yet: run npm run bench first`);
  const all = JSON.parse(readFileSync(BENCH_JSON, 'utf8'));
  const fmt = (v, unit) => (unit === 'x' ? `${v.toFixed(2)}×` : unit === 'bool' ? (v ? 'yes' : 'no') : unit === '%' ? `${v.toFixed(1)} %` : `${v} ${unit === 'us' ? 'µs' : unit}`);
  const met = (f) => (f.goal === null ? '' : (f.goalIs === 'min' ? f.value >= f.goal : f.value <= f.goal) ? ' ✓' : ' ✗');
  console.log('| id | figure | value | goal | measured |');
  console.log('|---|---|---|---|---|');
  for (const [id, f] of Object.entries(all)) {
    const goal = f.goal === null ? '' : f.unit === 'bool' ? fmt(f.goal, f.unit) : `${f.goalIs === 'min' ? '≥' : '≤'} ${fmt(f.goal, f.unit)}`;
    console.log(`| \`${id}\` | ${f.what} | ${fmt(f.value, f.unit)}${met(f)} | ${goal} | ${f.date.slice(0, 10)}, ${f.accelerator}, ${f.commit} |`);
  }
  process.exit(0);
}

const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
if (onlyAt >= 0 && !only) throw new Error('--only needs a figure id prefix, e.g. --only proxy.');
const selected = BENCHES.filter((b) => !only || only.split(',').some((o) => b.prefixes.some((p) => p.startsWith(o) || o.startsWith(p))));
if (selected.length === 0) throw new Error(`no bench records figures under ${only}; prefixes: ${BENCHES.flatMap((b) => b.prefixes).join(' ')}`);

ensureApt(['vm', 'e2e']);
ensureNpm();
buildWithImage();
if (selected.some((b) => b.name === 'workbench')) {
  const { ensureCodeServer } = await import('./e2e/codeServer.mjs');
  ensureCodeServer();
}
if (only) process.env.BENCH_ONLY = only;
for (const bench of selected) runNode(['--import', 'tsx', path.join(ROOT, 'scripts', 'bench', `${bench.name}.ts`)]);
console.log(`\nfigures: ${path.relative(ROOT, BENCH_JSON)} (npm run bench -- --table prints them as Markdown)`);
