// `npm run bench`: builds, makes sure the guest image exists, then prints every benchmark's figures.
import * as path from 'node:path';
import { buildWithImage, ensureApt, ensureNpm, ROOT, runNode } from './setup.mjs';

ensureApt(['vm']);
ensureNpm();
buildWithImage();
for (const bench of ['vm', 'sandbox', 'agent', 'review']) runNode(['--import', 'tsx', path.join(ROOT, 'scripts', 'bench', `${bench}.ts`)]);
