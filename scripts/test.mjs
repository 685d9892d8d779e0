// `npm test` and its parts. Installs what the suites need, then typechecks, lints, builds and runs
// the suites; prints one closing line "N passed, N failed" (checks count as one test each).
//   node scripts/test.mjs all | unit | vm | escape | e2e
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { ensureApt, ensureNpm, nodeVersionOk, ROOT } from './setup.mjs';

const what = process.argv[2] ?? 'all';
const SUITES = { unit: 'test/unit', vm: 'test/vm', escape: 'test/vm/escape.test.ts', e2e: 'test/e2e' };
const wanted = what === 'all' ? ['unit', 'vm', 'e2e'] : [what];
const needsVm = (name) => name === 'vm' || name === 'escape' || name === 'e2e';
if (!wanted.every((w) => w in SUITES)) {
  console.error(`usage: node scripts/test.mjs all|${Object.keys(SUITES).join('|')}`);
  process.exit(2);
}

const work = path.join(ROOT, '.test-work');
mkdirSync(work, { recursive: true });
let passed = 0;
let failed = 0;
const failures = [];

function step(name, cmd, args, opts = {}) {
  const t0 = Date.now();
  process.stdout.write(`\n=== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', ...opts });
  const ok = r.status === 0;
  process.stdout.write(`=== ${name}: ${ok ? 'ok' : `FAILED (exit ${r.status ?? r.signal})`} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return ok;
}

function check(name, cmd, args) {
  if (step(name, cmd, args)) passed++;
  else {
    failed++;
    failures.push(name);
  }
}

function suite(name) {
  const where = SUITES[name];
  const files = where.endsWith('.ts') ? [where] : readdirSync(path.join(ROOT, where)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join(where, f));
  const tap = path.join(work, `${name}.tap`);
  const args = ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`];
  if (name !== 'unit') args.push('--test-concurrency=1');
  const ok = step(`${name} tests`, process.execPath, [...args, ...files]);
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  const count = (label) => Number(new RegExp(`^# ${label} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  const p = count('pass');
  const f = count('fail') + count('cancelled');
  passed += p;
  failed += f;
  if (!ok && f === 0) {
    failed++; // the runner failed without a failing test (crash, no tests): never count that as green
    failures.push(`${name} runner`);
  } else if (f > 0) failures.push(`${name} tests`);
  if (p + f === 0) {
    failed++;
    failures.push(`${name}: no tests ran`);
  }
}

try {
  nodeVersionOk();
  if (wanted.some(needsVm)) ensureApt(['vm']);
  if (wanted.includes('e2e')) ensureApt(['e2e']);
  ensureNpm();
  if (wanted.includes('e2e')) {
    const { ensureCodeServer } = await import('./e2e/codeServer.mjs');
    ensureCodeServer();
  }
} catch (err) {
  console.error(`setup failed: ${err.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const npx = (bin) => path.join(ROOT, 'node_modules', '.bin', bin);
if (what === 'all') {
  check('typecheck', npx('tsc'), ['-p', '.']);
  check('lint', npx('eslint'), ['.']);
}
check('build', process.execPath, ['esbuild.mjs']);
for (const name of wanted) {
  if (needsVm(name)) {
    // Build (or verify) the guest image up front, with its own progress, so no test waits on it.
    if (!step('guest image', process.execPath, [path.join(ROOT, 'dist', 'vm-host.js'), '--build-image'])) {
      failed++;
      failures.push('guest image');
      continue;
    }
  }
  suite(name);
}

if (failures.length) console.log(`\nfailed: ${failures.join(', ')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
