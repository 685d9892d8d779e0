// `npm run demo`: installs what it needs, builds, prepares the guest image (with progress), boots
// the VM on the sample workspace and runs a command in it.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ensureApt, ensureNpm, nodeVersionOk, ROOT } from './setup.mjs';

nodeVersionOk();
ensureApt(['vm']);
ensureNpm();
const run = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(['esbuild.mjs']);
run([path.join(ROOT, 'dist', 'vm-host.js'), '--build-image']);
run(['--import', 'tsx', path.join(ROOT, 'scripts', 'demo', 'vm.ts')]);
