// Installs code-server 4.100.3 (VS Code 1.100.3, the newest that runs on Node 20) into the user's
// cache dir, once. Its @vscode/ripgrep postinstall would download from GitHub, which these machines
// cannot reach, so a tarball holding Debian's /usr/bin/rg is put where that postinstall looks first.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const CODE_SERVER_VERSION = '4.100.3';

export function cacheRoot() {
  return process.env.COWORK_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'cowork-vscode');
}

export function codeServerBin() {
  return path.join(cacheRoot(), `code-server-${CODE_SERVER_VERSION}`, 'node_modules', '.bin', 'code-server');
}

export function ensureCodeServer() {
  const bin = codeServerBin();
  if (existsSync(bin)) return bin;
  const dir = path.dirname(path.dirname(path.dirname(bin)));
  mkdirSync(dir, { recursive: true });
  const rg = '/usr/bin/rg';
  if (!existsSync(rg)) throw new Error('ripgrep is missing: sudo apt-get install ripgrep');
  const tmp = process.env.TMPDIR ?? os.tmpdir();
  const cache = path.join(tmp, 'vscode-ripgrep-cache-1.15.11');
  mkdirSync(cache, { recursive: true });
  const tarball = path.join(cache, 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz');
  if (!existsSync(tarball)) {
    const stage = mkdtempSync(path.join(tmp, 'rg-'));
    copyFileSync(rg, path.join(stage, 'rg'));
    execFileSync('tar', ['-czf', tarball, '-C', stage, 'rg']);
    rmSync(stage, { recursive: true, force: true });
  }
  process.stderr.write(`[e2e] installing code-server ${CODE_SERVER_VERSION} into ${dir} (once; ~100 s, ~300 MB)\n`);
  const r = spawnSync('npm', ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', '--unsafe-perm', `code-server@${CODE_SERVER_VERSION}`], {
    stdio: 'inherit',
    env: { ...process.env, npm_config_nodedir: '/usr', npm_config_yes: 'true' },
  });
  if (r.status !== 0 || !existsSync(bin)) throw new Error(`installing code-server failed (exit ${r.status})`);
  return bin;
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(ensureCodeServer());
