// `npm run demo [-- --scripted]`: installs what it needs (apt and npm packages, code-server),
// builds, prepares the guest image with progress, then serves a real VS Code with the extension on
// a sample workspace and prints its URL. `--vm-only` just boots the VM and runs a command in it.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ensureCodeServer } from './e2e/codeServer.mjs';
import { ensureApt, ensureNpm, nodeVersionOk, ROOT } from './setup.mjs';

nodeVersionOk();
const vmOnly = process.argv.includes('--vm-only');
ensureApt(vmOnly ? ['vm'] : ['vm', 'e2e']);
ensureNpm();
const run = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(['esbuild.mjs']);
run([path.join(ROOT, 'dist', 'vm-host.js'), '--build-image']);
if (vmOnly) run(['--import', 'tsx', path.join(ROOT, 'scripts', 'demo', 'vm.ts')]);
else {
  ensureCodeServer();
  run(['--import', 'tsx', path.join(ROOT, 'scripts', 'demo', 'codeServer.ts'), ...process.argv.slice(2)]);
}
