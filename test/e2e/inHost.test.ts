// Runs the Mocha suite in test/e2e/inHost inside code-server's real extension host, the way
// @vscode/test-electron does: the workbench is opened with extensionDevelopmentPath and
// extensionTestsPath in its payload, Mocha's output arrives through codeAutomationLog and the exit
// code through codeAutomationExit. Mocha's counts are printed as "in-host mocha: N passing, N
// failing" and a run with a failure or with nothing passing fails here; the suite's security
// attempts ("attempt settings/…: blocked|ESCAPED") are recorded with the run's other attempts.
//
// The trusted workspace is a hostile one: its .vscode/settings.json points cowork.apiBaseUrl at a
// loopback server of this test's own (which must receive nothing), switches to direct mode, widens
// the egress policy, adds a header and asks for all the host's memory. Only its extra denied
// domain may take effect.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { format } from 'node:util';
import { after, before, describe, it } from 'node:test';
import * as esbuild from 'esbuild';
import { attempt, recordAttemptLines } from '../support/attempts';
import { E2E_API_KEY, launchBrowser, ROOT, startCodeServer, type CodeServer } from './harness';
import { hostileWorkspaceSettings, inHostUserSettings, startStealer, type Stealer } from './hostileWorkspace';

const suiteDir = path.join(ROOT, '.test-work', 'in-host');

before(async () => {
  const build = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  await esbuild.build({ entryPoints: [path.join(ROOT, 'test', 'e2e', 'inHost', 'index.ts')], outfile: path.join(suiteDir, 'index.js'), bundle: true, platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', 'mocha'], logLevel: 'warning' });
  await esbuild.stop(); // its service process would keep this test process alive
}, { timeout: 300_000 });

let stealer: Stealer;
before(async () => {
  stealer = await startStealer();
}, { timeout: 10_000 });
after(() => stealer.close());

/** Mocha's closing counts in the output of a run. */
function mochaCounts(output: readonly string[]): { passing: number; failing: number; pending: number } {
  const text = output.join('\n');
  const n = (label: string): number => Number(new RegExp(`^\\s*(\\d+) ${label}\\b`, 'm').exec(text)?.[1] ?? 0);
  return { passing: n('passing'), failing: n('failing'), pending: n('pending') };
}

/** Opens a workbench on a fresh code-server with the extension under development and the suite. */
async function runInHost(trusted: boolean): Promise<{ code: number; output: string[]; notices: string }> {
  const userSettings = inHostUserSettings(trusted);
  const server: CodeServer = await startCodeServer({ trust: !trusted, settings: userSettings, env: { ANTHROPIC_API_KEY: E2E_API_KEY, COWORK_EXPECT_UNTRUSTED: trusted ? '' : '1', COWORK_TEST_STEALER_URL: stealer.url } });
  if (trusted) {
    await mkdir(path.join(server.workspace, '.vscode'), { recursive: true });
    await writeFile(path.join(server.workspace, '.vscode', 'settings.json'), JSON.stringify(hostileWorkspaceSettings(stealer.url), null, 2));
  }
  const browser = await launchBrowser();
  try {
    const page = browser.page;
    const output: string[] = [];
    const exit = new Promise<number>((resolve) => {
      void page.exposeFunction('codeAutomationLog', (type: string, args: unknown[]) => {
        const line = format(...args);
        output.push(line);
        process.stdout.write(`  [in-host] ${line}\n`);
      });
      void page.exposeFunction('codeAutomationExit', (code: number) => resolve(code));
    });
    const remote = (p: string): string => `vscode-remote://${new URL(server.url).host}${p}`;
    const payload = JSON.stringify([
      ['extensionDevelopmentPath', remote(ROOT)],
      ['extensionTestsPath', remote(suiteDir)],
    ]);
    await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}&payload=${encodeURIComponent(payload)}`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<number>((r) => (timer = setTimeout(() => r(-1), 600_000)));
    const code = await Promise.race([exit, timeout]);
    clearTimeout(timer); // a pending timer would keep this test process alive for ten minutes
    // the notifications the person saw (the suite opens the notification centre before it ends)
    const notices = await page.locator('.notifications-center, .notifications-toasts').allInnerTexts().then((t) => t.join('\n')).catch(() => '');
    const counts = mochaCounts(output);
    console.log(`in-host mocha: ${counts.passing} passing, ${counts.failing} failing, ${counts.pending} pending (${trusted ? 'trusted' : 'untrusted'} workspace)`);
    recordAttemptLines(output.join('\n'));
    return { code, output, notices };
  } finally {
    await browser.close().catch(() => undefined);
    await server.stop();
  }
}

describe('in-host suite (Mocha in the real extension host)', { timeout: 1_500_000 }, () => {
  it('passes in a trusted workspace whose settings try to take over', { timeout: 720_000 }, async () => {
    const { code, output, notices } = await runInHost(true);
    const counts = mochaCounts(output);
    assert.equal(code, 0, `the in-host suite failed (exit ${code}):\n${output.slice(-40).join('\n')}`);
    assert.ok(counts.passing > 0 && counts.failing === 0, `Mocha reported ${counts.passing} passing, ${counts.failing} failing`);
    assert.ok(output.some((l) => /^attempt settings\/.+: blocked$/.test(l)), 'the settings attempts ran');
    assert.ok(!output.some((l) => /^attempt .+: ESCAPED$/.test(l)), 'no settings attempt escaped');
    await attempt('settings', 'workspace-apiBaseUrl-receives-nothing', () => {
      assert.deepEqual(stealer.requests.map((r) => `${r.url} ${r.headers['x-api-key'] ?? r.headers.authorization ? 'with the key' : ''}`), [], 'the server named by the workspace received nothing');
    });
    assert.match(notices, /Cowork ignored .*cowork\.apiBaseUrl/s, `the person was told (notifications: ${notices.slice(0, 400)})`);
    assert.match(notices, /\.vscode\/settings\.json/, 'the warning names the file');
  });

  it('runs nothing in an untrusted workspace', { timeout: 720_000 }, async () => {
    const { code, output } = await runInHost(false);
    const counts = mochaCounts(output);
    assert.equal(code, 0, `the untrusted in-host suite failed (exit ${code}):\n${output.slice(-40).join('\n')}`);
    assert.ok(counts.passing > 0 && counts.failing === 0, `Mocha reported ${counts.passing} passing, ${counts.failing} failing`);
  });
});
