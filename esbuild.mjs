// Bundles the three programs of the extension into dist/:
//   extension.js — runs in the VS Code extension host (CommonJS, `vscode` external)
//   vm-host.js   — the helper the extension starts with its own Node (owns QEMU and images)
//   webview.js   — the side panel UI (browser, IIFE)
// and copies the codicon font the panel uses.
import * as esbuild from 'esbuild';
import { cpSync, mkdirSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** ssh2 tries optional native addons inside try/catch; the pure-JS fallback is what runs under Electron's Node. */
const nodeExternals = ['*.node', 'cpu-features'];

const common = {
  bundle: true,
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'warning',
  legalComments: 'none',
};

const builds = [
  { ...common, entryPoints: ['extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', ...nodeExternals] },
  { ...common, entryPoints: ['vm-host/main.ts'], outfile: 'dist/vm-host.js', platform: 'node', format: 'cjs', target: 'node20', external: nodeExternals },
  { ...common, entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife', target: 'es2022' },
];

mkdirSync('dist/codicons', { recursive: true });
for (const f of ['codicon.css', 'codicon.ttf']) cpSync(`node_modules/@vscode/codicons/dist/${f}`, `dist/codicons/${f}`);

if (watch) {
  const contexts = await Promise.all(builds.map((b) => esbuild.context(b)));
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
