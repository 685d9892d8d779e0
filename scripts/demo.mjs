// `npm run demo [-- --scripted]`: installs what it needs (apt and npm packages, code-server),
// builds, prepares the guest image with progress, then serves a real VS Code with the extension on
// a sample workspace and prints its URL. `--vm-only` just boots the VM and runs a command in it.
import * as path from 'node:path';
import { ensureCodeServer } from './e2e/codeServer.mjs';
import { buildWithImage, ensureApt, ensureNpm, nodeVersionOk, ROOT, runNode } from './setup.mjs';

nodeVersionOk();
const vmOnly = process.argv.includes('--vm-only');
ensureApt(vmOnly ? ['vm'] : ['vm', 'e2e']);
ensureNpm();
buildWithImage();
if (vmOnly) runNode(['--import', 'tsx', path.join(ROOT, 'scripts', 'demo', 'vm.ts')]);
else {
  ensureCodeServer();
  runNode(['--import', 'tsx', path.join(ROOT, 'scripts', 'demo', 'codeServer.ts'), ...process.argv.slice(2)]);
}
