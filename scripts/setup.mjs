// Installs what the project needs on a Debian/Ubuntu machine: apt packages (only the missing ones,
// saying what and why; sudo only when not root) and npm dependencies (npm ci when the lock file is
// newer than node_modules). Plain Node, no dependencies: it runs before `npm ci`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const APT_GROUPS = {
  vm: {
    why: 'run the guest VM and build its image from Debian packages',
    packages: ['qemu-system-x86', 'qemu-utils', 'socat', 'mmdebstrap', 'squashfs-tools-ng', 'cpio', 'xz-utils', 'ca-certificates'],
  },
  e2e: {
    why: 'run a real VS Code (code-server) in a real browser (Chromium) for the end-to-end tests and the demo',
    packages: ['chromium', 'ripgrep', 'libkrb5-dev', 'build-essential', 'python3'],
  },
};

function log(msg) {
  process.stderr.write(`[setup] ${msg}\n`);
}

function isInstalled(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

let aptUpdated = false;
export function ensureApt(groupNames) {
  if (spawnSync('dpkg-query', ['--version']).status !== 0) {
    log(`not a Debian/Ubuntu system: install the equivalents of ${groupNames.flatMap((g) => APT_GROUPS[g].packages).join(' ')} yourself`);
    return;
  }
  for (const name of groupNames) {
    const group = APT_GROUPS[name];
    const missing = group.packages.filter((p) => !isInstalled(p));
    if (missing.length === 0) continue;
    log(`installing ${missing.join(' ')} to ${group.why}`);
    const asRoot = process.getuid?.() === 0;
    const prefix = asRoot ? [] : ['sudo'];
    if (!asRoot && spawnSync('sudo', ['-n', 'true']).status !== 0 && !process.stdin.isTTY) {
      throw new Error(`missing packages ${missing.join(' ')}; run: sudo apt-get install -y ${missing.join(' ')}`);
    }
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (!aptUpdated) {
      run(prefix[0] ?? 'apt-get', [...prefix.slice(1), ...(asRoot ? [] : ['apt-get']), 'update', '-q'], { env });
      aptUpdated = true;
    }
    run(prefix[0] ?? 'apt-get', [...prefix.slice(1), ...(asRoot ? [] : ['apt-get']), 'install', '-y', '-q', '--no-install-recommends', ...missing], { env });
  }
}

export function ensureNpm() {
  const marker = path.join(ROOT, 'node_modules', '.package-lock.json');
  const lock = path.join(ROOT, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  log('installing npm dependencies (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT });
}

export function nodeVersionOk() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) throw new Error(`Node ${process.versions.node} is too old: Cowork needs Node 20 or later.`);
}

export function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Runs `node args…` in the repository; exits with its status if it fails. */
export function runNode(args) {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** Builds the bundles and builds (or verifies) the guest image, with progress. */
export function buildWithImage() {
  runNode(['esbuild.mjs']);
  runNode([path.join(ROOT, 'dist', 'vm-host.js'), '--build-image']);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  nodeVersionOk();
  const groups = process.argv.slice(2).filter((a) => a in APT_GROUPS);
  ensureApt(groups.length ? groups : ['vm']);
  ensureNpm();
}
