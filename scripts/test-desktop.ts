// npm run test:desktop (node --import tsx scripts/test-desktop.ts) — the in-host Mocha suite (test/e2e/inHost) in a desktop VS Code, through
// @vscode/test-electron, the way most extensions run their integration tests.
//
// It needs a desktop VS Code that is already installed: VSCODE_PATH = its executable (e.g.
// /usr/share/code/code, "/Applications/Visual Studio Code.app/Contents/MacOS/Electron",
// %LOCALAPPDATA%\Programs\Microsoft VS Code\Code.exe). test-electron could download one, but these
// development machines reach only the npm registry and Debian's mirror, and CI has no display: so
// `npm test` runs the same suite in code-server (VS Code 1.100 in Chromium, test/e2e/inHost.test.ts),
// and this script is for a developer's machine. On Linux without $DISPLAY it uses xvfb-run if present.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostileWorkspaceSettings, inHostUserSettings, startStealer } from '../test/e2e/hostileWorkspace';

const ROOT = path.resolve(__dirname, '..');

const exe = process.env.VSCODE_PATH;
if (!exe || !existsSync(exe)) {
  process.stderr.write(
    `[test:desktop] ${exe ? `VSCODE_PATH=${exe} does not exist` : 'VSCODE_PATH is not set'}: point it at a desktop VS Code's executable (1.100 or later) and run again.\n` +
      '[test:desktop] The same in-host suite runs in code-server as part of `npm test` (npm run test:e2e); no test ran here.\n',
  );
  process.exit(2);
}
if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.XVFB_WRAPPED) {
  const xvfb = spawnSync('sh', ['-c', 'command -v xvfb-run'], { encoding: 'utf8' }).stdout.trim();
  if (!xvfb) {
    process.stderr.write('[test:desktop] no $DISPLAY and no xvfb-run: install xvfb (apt-get install xvfb) or run it in a desktop session.\n');
    process.exit(2);
  }
  const r = spawnSync(xvfb, ['-a', process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, XVFB_WRAPPED: '1' } });
  process.exit(r.status ?? 1);
}

async function main(): Promise<number> {
  const build = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) return build.status ?? 1;
  const esbuild = await import('esbuild');
  const suiteDir = path.join(ROOT, '.test-work', 'in-host-desktop');
  await esbuild.build({ entryPoints: [path.join(ROOT, 'test', 'e2e', 'inHost', 'index.ts')], outfile: path.join(suiteDir, 'index.js'), bundle: true, platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', 'mocha'], logLevel: 'warning' });

  // a throwaway profile and a copy of the sample workspace with the same hostile settings file as the
  // code-server run (test/e2e/hostileWorkspace.ts); the server it names must receive nothing
  const stealer = await startStealer();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cowork-desktop-'));
  const userData = path.join(dir, 'user-data');
  const workspace = path.join(dir, 'workspace');
  cpSync(path.join(ROOT, 'demo', 'workspace'), workspace, { recursive: true });
  mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
  writeFileSync(path.join(workspace, '.vscode', 'settings.json'), JSON.stringify(hostileWorkspaceSettings(stealer.url), null, 2));
  mkdirSync(path.join(userData, 'User'), { recursive: true });
  writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify({ 'security.workspace.trust.enabled': false, 'workbench.startupEditor': 'none', 'cowork.vm.warm': false, ...inHostUserSettings(true) }, null, 2),
  );

  const { runTests } = await import('@vscode/test-electron');
  let code = 0;
  try {
    await runTests({
      vscodeExecutablePath: exe,
      extensionDevelopmentPath: ROOT,
      extensionTestsPath: path.join(suiteDir, 'index.js'),
      launchArgs: [workspace, '--user-data-dir', userData, '--extensions-dir', path.join(dir, 'extensions'), '--disable-gpu'],
      extensionTestsEnv: { ANTHROPIC_API_KEY: 'sk-ant-api03-desktop-scripted-key-0123456789', COWORK_EXPECT_UNTRUSTED: '', COWORK_TEST_STEALER_URL: stealer.url },
    });
    if (stealer.requests.length > 0) {
      process.stderr.write(`[test:desktop] the server the workspace named received ${stealer.requests.length} request(s): the settings boundary failed\n`);
      code = 1;
    }
  } catch (err) {
    process.stderr.write(`[test:desktop] ${err instanceof Error ? err.message : String(err)}\n`);
    code = 1;
  } finally {
    stealer.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return code;
}

void main().then((code) => process.exit(code));
