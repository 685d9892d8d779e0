// `npm run bench`: builds, makes sure the guest image exists, then prints every benchmark's figures.
import * as path from 'node:path';
import { buildWithImage, ensureApt, ensureNpm, ROOT, runNode } from './setup.mjs';

ensureApt(['vm', 'e2e']);
ensureNpm();
buildWithImage();
const { ensureCodeServer } = await import('./e2e/codeServer.mjs');
ensureCodeServer();
for (const bench of ['vm', 'sandbox', 'agent', 'review', 'workbench']) runNode(['--import', 'tsx', path.join(ROOT, 'scripts', 'bench', `${bench}.ts`)]);
