// Runs the Mocha suite in test/e2e/inHost inside code-server's real extension host, the way
// @vscode/test-electron does: the workbench is opened with extensionDevelopmentPath and
// extensionTestsPath in its payload, Mocha's output arrives through codeAutomationLog and the exit
// code through codeAutomationExit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { format } from 'node:util';
import { before, describe, it } from 'node:test';
import * as esbuild from 'esbuild';
import { E2E_API_KEY, launchBrowser, ROOT, startCodeServer, type CodeServer } from './harness';

const suiteDir = path.join(ROOT, '.test-work', 'in-host');

before(async () => {
  const build = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  await esbuild.build({ entryPoints: [path.join(ROOT, 'test', 'e2e', 'inHost', 'index.ts')], outfile: path.join(suiteDir, 'index.js'), bundle: true, platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', 'mocha'], logLevel: 'warning' });
  await esbuild.stop(); // its service process would keep this test process alive
});

/** Opens a workbench on a fresh code-server with the extension under development and the suite. */
async function runInHost(trusted: boolean): Promise<{ code: number; output: string[] }> {
  const server: CodeServer = await startCodeServer({ trust: !trusted, settings: { 'cowork.vm.cpus': 2, 'cowork.vm.memoryMiB': 1024, 'cowork.vm.diskGiB': 4 }, env: { ANTHROPIC_API_KEY: E2E_API_KEY, COWORK_EXPECT_UNTRUSTED: trusted ? '' : '1' } });
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
    return { code, output };
  } finally {
    await browser.close().catch(() => undefined);
    await server.stop();
  }
}

describe('in-host suite (Mocha in the real extension host)', () => {
  it('passes in a trusted workspace', async () => {
    const { code, output } = await runInHost(true);
    assert.equal(code, 0, `the in-host suite failed (exit ${code}):\n${output.slice(-40).join('\n')}`);
    assert.ok(output.some((l) => /\d+ passing/.test(l)) && !output.some((l) => /\d+ failing/.test(l)), 'Mocha reported its results, with no failure');
  });

  it('runs nothing in an untrusted workspace', async () => {
    const { code, output } = await runInHost(false);
    assert.equal(code, 0, `the untrusted in-host suite failed (exit ${code}):\n${output.slice(-40).join('\n')}`);
    assert.ok(output.some((l) => /passing/.test(l)), 'Mocha reported its results');
  });
});
