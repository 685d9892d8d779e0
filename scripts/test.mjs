// `npm test` and its parts. Installs what the suites need, then typechecks, lints, builds and runs
// the suites; prints one closing line "N passed, N failed, N skipped" (checks count as one test each).
//   node scripts/test.mjs all | unit | vm | escape | security | faults | e2e
//
// Nothing can hang or leak: every VM/e2e test file runs as its own `node --test` process group with
// a wall-clock limit (a file that outlives it is killed and reported failed by name), and every
// process a file started carries a marker in its environment, so one that outlives its file (a
// helper, QEMU, code-server, Chromium) is found, killed and counted as a failure.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { ensureApt, ensureNpm, nodeVersionOk, ROOT } from './setup.mjs';

const what = process.argv[2] ?? 'all';
const SUITES = {
  unit: 'test/unit',
  vm: 'test/vm',
  escape: 'test/vm/escape.test.ts',
  security: 'test/security',
  faults: 'test/faults',
  e2e: 'test/e2e',
};
const ALL = ['unit', 'vm', 'security', 'faults', 'e2e'];
const wanted = what === 'all' ? ALL : [what];
const needsVm = (name) => name !== 'unit';
if (!wanted.every((w) => w in SUITES)) {
  console.error(`usage: node scripts/test.mjs all|${Object.keys(SUITES).join('|')}`);
  process.exit(2);
}

/** Wall-clock limit of one VM/e2e test file (its tests carry their own, smaller limits). */
const FILE_LIMIT_MS = Number(process.env.COWORK_TEST_FILE_LIMIT_S ?? 1200) * 1000;
/** Default limit of one test that sets none. */
const TEST_TIMEOUT_MS = 600_000;
/** How long processes of a finished file may take to exit on their own (watchdogs, QEMU's SIGTERM grace). */
const LEFTOVER_GRACE_MS = 8_000;

const work = path.join(ROOT, '.test-work');
const tapDir = path.join(work, 'tap');
rmSync(tapDir, { recursive: true, force: true }); // never count an earlier run's results
mkdirSync(tapDir, { recursive: true });
const attemptsFile = path.join(work, 'security-attempts.jsonl');
const faultsFile = path.join(work, 'faults.jsonl');
rmSync(attemptsFile, { force: true });
rmSync(faultsFile, { force: true });

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
const fail = (what) => {
  failed++;
  failures.push(what);
};

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
  else fail(name);
}

/** Pids of live processes whose environment carries the marker (Linux; elsewhere none are found). */
function processesWithMarker(marker) {
  if (process.platform !== 'linux') return [];
  const found = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${d}/environ`).includes(marker)) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue; // a zombie is already dead
      let exe = '';
      try {
        exe = path.basename(readlinkSync(`/proc/${d}/exe`));
      } catch {
        exe = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      }
      found.push({ pid: Number(d), exe, cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 160) });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

async function reapLeftovers(label, marker) {
  const end = Date.now() + LEFTOVER_GRACE_MS;
  let left = processesWithMarker(marker);
  while (left.length && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    left = processesWithMarker(marker);
  }
  if (!left.length) return;
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  console.log(`\n!!! ${label} left ${left.length} process(es) running; killed them:\n${left.map((p) => `    ${p.pid} ${p.exe}: ${p.cmd}`).join('\n')}`);
  fail(`${label}: leftover processes (${[...new Set(left.map((p) => p.exe))].join(', ')})`);
}

function tapCounts(text) {
  const count = (label) => Number(new RegExp(`^# ${label} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  // The in-host Mocha suites run inside code-server and stream their output through the e2e test
  // ("[in-host] 12 passing"), which lands in the TAP file as comments: count their tests too.
  const mocha = (label) => [...text.matchAll(new RegExp(`^#\\s+\\[in-host\\]\\s+(\\d+) ${label}\\b`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  return { pass: count('pass') + mocha('passing'), fail: count('fail') + count('cancelled') + mocha('failing'), skipped: count('skipped') + mocha('pending'), todo: count('todo') };
}

/** Runs test files in one `node --test` process group with a wall-clock limit; returns the exit status or 'timeout'. */
function runNodeTest(files, tap, { concurrency, limitMs, marker }) {
  const args = ['--import', 'tsx', '--test', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`];
  if (concurrency) args.push(`--test-concurrency=${concurrency}`);
  const env = { ...process.env, COWORK_ATTEMPTS_FILE: attemptsFile, COWORK_FAULTS_FILE: faultsFile };
  if (marker) env.COWORK_TEST_RUN = marker;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...args, ...files], { cwd: ROOT, stdio: 'inherit', env, detached: true });
    let timedOut = false;
    const timer = limitMs
      ? setTimeout(() => {
          timedOut = true;
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }, limitMs)
      : undefined;
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(timedOut ? 'timeout' : (code ?? signal));
    });
  });
}

async function suite(name) {
  const where = SUITES[name];
  const all = where.endsWith('.ts') ? [where] : readdirSync(path.join(ROOT, where)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join(where, f));
  if (all.length === 0) {
    fail(`${name}: no test files in ${where}`);
    return;
  }
  const t0 = Date.now();
  process.stdout.write(`\n=== ${name} tests (${all.length} file${all.length === 1 ? '' : 's'})\n`);
  // Unit tests run together (fast, no VM); each VM/e2e file alone, with its own limit and leak check.
  const groups = name === 'unit' ? [all] : all.map((f) => [f]);
  let ran = 0;
  for (const files of groups) {
    const label = name === 'unit' ? 'unit tests' : files[0];
    const tap = path.join(tapDir, `${label.replace(/[^\w.-]+/g, '_')}.tap`);
    const marker = `cowork-test-${randomBytes(6).toString('hex')}`;
    const status = await runNodeTest(files, tap, name === 'unit' ? {} : { concurrency: 1, limitMs: FILE_LIMIT_MS, marker: `COWORK_TEST_RUN=${marker}` });
    if (name !== 'unit') await reapLeftovers(label, `COWORK_TEST_RUN=${marker}`);
    const c = tapCounts(existsSync(tap) ? readFileSync(tap, 'utf8') : '');
    passed += c.pass;
    skipped += c.skipped + c.todo;
    if (c.fail) {
      failed += c.fail;
      failures.push(`${label} (${c.fail} failed)`);
    }
    if (status === 'timeout') fail(`${label}: timed out after ${FILE_LIMIT_MS / 1000} s and was killed`);
    else if (status !== 0 && c.fail === 0) fail(`${label}: runner exited ${status} without a failing test (crash?)`);
    if (c.pass + c.fail + c.skipped + c.todo === 0 && status !== 'timeout') fail(`${label}: no tests ran`);
    ran += c.pass + c.fail;
  }
  process.stdout.write(`=== ${name} tests: ${ran} ran in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

function records(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
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
let imageOk;
for (const name of wanted) {
  if (needsVm(name)) {
    // Build (or verify) the guest image up front, with its own progress, so no test waits on it.
    imageOk ??= step('guest image', process.execPath, [path.join(ROOT, 'dist', 'vm-host.js'), '--build-image']);
    if (!imageOk) {
      fail(`${name}: no guest image`);
      continue;
    }
  }
  await suite(name);
}

const attempts = records(attemptsFile);
if (attempts.length || wanted.includes('security')) {
  const blocked = attempts.filter((a) => a.blocked).length;
  const escaped = attempts.filter((a) => !a.blocked);
  if (escaped.length) fail(`security: ${escaped.length} attempt(s) succeeded (${escaped.map((a) => `${a.area}/${a.name}`).join(', ')})`);
  if (wanted.includes('security') && attempts.length === 0) fail('security: no attempts recorded');
  console.log(`\nsecurity attempts: ${attempts.length}, blocked: ${blocked}, succeeded: ${escaped.length}`);
}
const faults = records(faultsFile);
if (faults.length || wanted.includes('faults')) {
  const lost = faults.filter((f) => !f.survived);
  if (lost.length) fail(`faults: ${lost.length} lost (${lost.map((f) => `${f.area}/${f.name}`).join(', ')})`);
  if (wanted.includes('faults') && faults.length === 0) fail('faults: no faults recorded');
  console.log(`faults: ${faults.length}, survived: ${faults.length - lost.length}, lost: ${lost.length}`);
}

if (failures.length) console.log(`\nfailed: ${failures.join('; ')}`);
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
