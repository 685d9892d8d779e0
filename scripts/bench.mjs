// `npm run bench`: builds, makes sure the guest image exists, then prints every benchmark's figures.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ensureApt, ensureNpm, ROOT } from './setup.mjs';

ensureApt(['vm']);
ensureNpm();
const run = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(['esbuild.mjs']);
run([path.join(ROOT, 'dist', 'vm-host.js'), '--build-image']);
for (const bench of ['vm', 'sandbox', 'agent', 'review']) run(['--import', 'tsx', path.join(ROOT, 'scripts', 'bench', `${bench}.ts`)]);
