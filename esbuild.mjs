// Bundles the three programs of the extension into dist/:
//   extension.js — activation in the VS Code extension host (CommonJS, `vscode` external); it loads
//   wiring.js — the engine and the workbench glue — on first use, and that loads vendor/*.js when a task runs
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

/**
 * Activation time is mostly parsing the bundle. The Anthropic SDK and the SSH client are needed
 * only once a task or VM starts (the engine imports them dynamically), so they live in files of
 * their own under dist/vendor/ and are read on first use, like an external package would be.
 */
const VENDOR = { '@anthropic-ai/sdk': 'anthropic-sdk.js', ssh2: 'ssh2.js' };
const vendorSplit = {
  name: 'vendor-split',
  setup(build) {
    build.onResolve({ filter: /^(@anthropic-ai\/sdk|ssh2)$/ }, (args) => ({ path: `./vendor/${VENDOR[args.path]}`, external: true }));
  },
};
const vendorBuilds = Object.entries(VENDOR).map(([pkg, file]) => ({
  ...common,
  stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: process.cwd(), loader: 'js' },
  outfile: `dist/vendor/${file}`,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: nodeExternals,
}));

/** extension.js is only the activation stand-ins; it requires the engine's wiring (dist/wiring.js) on first use. */
const wiringSplit = {
  name: 'wiring-split',
  setup(build) {
    build.onResolve({ filter: /^\.\/wiring\.js$/ }, () => ({ path: './wiring.js', external: true }));
  },
};

const builds = [
  { ...common, entryPoints: ['extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', ...nodeExternals], plugins: [wiringSplit] },
  { ...common, entryPoints: ['extension/wiring.ts'], outfile: 'dist/wiring.js', platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', ...nodeExternals], plugins: [vendorSplit] },
  ...vendorBuilds,
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
