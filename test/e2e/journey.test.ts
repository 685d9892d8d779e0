// The whole user journey in a real VS Code in a real browser, with the scripted Messages API
// server as the model: open the Cowork panel, delegate a task, watch the transcript stream, see the
// VM boot, see a blocked request, review the change in Source Control, accept it, check the file on
// disk; then stop a running command. Screenshots go to .test-work/e2e-screenshots/.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FrameLocator, Page } from 'playwright-core';
import { demoConversation } from '../support/demoConversation';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { E2E_API_KEY, launchBrowser, packageVsix, panelFrame, runCommand, screenshot, SCREENSHOTS, selectTheme, startCodeServer, type CodeServer } from './harness';

let model: ScriptedModel;
let server: CodeServer;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
let panel: FrameLocator;

before(async () => {
  model = new ScriptedModel();
  const baseURL = await model.start();
  const vsix = packageVsix();
  server = await startCodeServer({
    vsix,
    settings: { 'cowork.apiBaseUrl': baseURL, 'cowork.vm.cpus': 2, 'cowork.vm.memoryMiB': 1024, 'cowork.vm.diskGiB': 4, 'workbench.colorTheme': 'Default Dark Modern' },
    env: { ANTHROPIC_API_KEY: E2E_API_KEY },
  });
  browser = await launchBrowser();
  page = browser.page;
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
});

after(async () => {
  console.log(`screenshots: ${SCREENSHOTS}`);
  await browser?.close().catch(() => undefined);
  await server?.stop();
  await model?.close();
});

/** `<name>-dark.png`, then the same in Light Modern as `<name>-light.png`; back to dark after. */
async function screenshotInBothThemes(name: string): Promise<void> {
  await screenshot(page, `${name}-dark`);
  await selectTheme(page, 'Light Modern');
  await page.locator('.monaco-workbench.vs').waitFor({ timeout: 20_000 });
  await page.waitForTimeout(1000);
  await screenshot(page, `${name}-light`);
  await selectTheme(page, 'Dark Modern');
  await page.locator('.monaco-workbench.vs-dark').waitFor({ timeout: 20_000 });
}

describe('the user journey in a real VS Code', () => {
  it('opens the Cowork panel from the activity bar', async () => {
    const entry = page.locator('.activitybar .action-item a[aria-label^="Cowork"]');
    await entry.waitFor({ timeout: 60_000 });
    await entry.click();
    panel = panelFrame(page);
    await panel.locator('#prompt').waitFor({ timeout: 60_000 });
    await screenshot(page, '01-panel');
  });

  it('delegates a task and streams the transcript, the VM state and a bash card with its output', async () => {
    model.play(...demoConversation());
    await panel.locator('#prompt textarea').fill('Make slugify handle accents');
    await panel.locator('#delegate').click();
    await panel.locator('#task-vm-state', { hasText: /booting|ready/ }).waitFor({ timeout: 60_000 });
    await screenshot(page, '02-booting');
    await panel.locator('#task-vm-state', { hasText: 'VM ready' }).waitFor({ timeout: 240_000 });
    const bash = panel.locator('details.tool[data-tool="bash"]').first();
    await bash.waitFor({ timeout: 120_000 });
    // finished tool cards are collapsed: their output is in the page, not necessarily visible
    await panel.locator('details.tool[data-tool="bash"] pre.output', { hasText: 'slugify.py' }).first().waitFor({ state: 'attached', timeout: 120_000 });
    await panel.locator('.msg.assistant', { hasText: 'creme-brulee-deja-vu' }).waitFor({ timeout: 240_000 });
    await panel.locator('details.tool pre.output', { hasText: 'creme-brulee-deja-vu' }).first().waitFor({ state: 'attached', timeout: 10_000 });
    await screenshot(page, '03-transcript');
  });

  it('shows the task\'s diff, its VM\'s cpu, memory and disk, and looks native in a light theme', async () => {
    // the change, as a unified, syntax-coloured diff in the panel
    const diff = panel.locator('details.file-diff[data-path="slugify.py"]');
    await diff.waitFor({ timeout: 60_000 });
    await panel.locator('details.file-diff[data-path="slugify.py"] .diff-line.add', { hasText: 'import unicodedata' }).waitFor({ state: 'attached', timeout: 10_000 });
    assert.ok((await panel.locator('details.file-diff[data-path="slugify.py"] .diff-line.add span[class^="hljs-"]').count()) > 0, 'the diff is syntax coloured');
    assert.match((await panel.locator('#reveal-changes').textContent()) ?? '', /1 change/);
    // usage of the task's VM, sampled from the helper every 2 s
    await panel.locator('#task-vm-usage', { hasText: /mem \d+ MiB/ }).waitFor({ timeout: 20_000 });
    assert.match((await panel.locator('#task-vm-usage').textContent()) ?? '', /cpu \d+% · mem \d+ MiB · disk \d+/);
    await screenshotInBothThemes('03-panel');
  });

  it('shows the blocked network request in the panel', async () => {
    await panel.locator('.blocked-item', { hasText: 'blocked.example' }).waitFor({ timeout: 30_000 });
  });

  it('shows the change in Source Control, opens its diff, and accepting writes the file', async () => {
    const before = await readFile(path.join(server.workspace, 'slugify.py'), 'utf8');
    assert.doesNotMatch(before, /unicodedata/, 'nothing reached the workspace before the review');
    await page.keyboard.press('Control+Shift+G');
    const row = page.locator('.scm-view .monaco-list-row', { hasText: 'slugify.py' }).first();
    await row.waitFor({ timeout: 60_000 });
    await screenshot(page, '04-scm');
    // The change set refreshes as the task ends, and a refresh may reorder the rows under the
    // pointer: click until the diff that opens is slugify.py's, then read its right side.
    const tab = page.locator('.tabs-container .tab.active', { hasText: 'slugify.py (Cowork' });
    for (let attempt = 0; ; attempt++) {
      await row.click();
      const opened = await tab.waitFor({ timeout: 10_000 }).then(() => true, () => false);
      if (opened) break;
      if (attempt === 4) {
        await screenshot(page, 'fail-diff');
        assert.fail(`clicking slugify.py in Source Control did not open its diff (active tab: ${await page.locator('.tabs-container .tab.active').first().textContent().catch(() => '?')})`);
      }
    }
    // the right side is the agent's version, served from the guest
    await page.locator('.monaco-diff-editor .editor.modified .view-lines', { hasText: 'import unicodedata' }).waitFor({ timeout: 30_000 }).catch(async (err: unknown) => {
      await screenshot(page, 'fail-diff-content');
      const shown = await page.locator('.monaco-diff-editor .editor.modified .view-lines').first().textContent().catch(() => '?');
      throw new Error(`the diff's right side does not show the agent's version; it shows: ${shown?.slice(0, 300)}`, { cause: err });
    });
    await screenshot(page, '04-diff');
    await runCommand(page, 'Cowork: Accept All Changes');
    const deadline = Date.now() + 30_000;
    let after = before;
    while (Date.now() < deadline && !/unicodedata/.test(after)) {
      await new Promise((r) => setTimeout(r, 250));
      after = await readFile(path.join(server.workspace, 'slugify.py'), 'utf8');
    }
    assert.match(after, /import unicodedata/);
    assert.match(after, /normalize\("NFKD"/);
    await screenshot(page, '05-accepted');
  });

  it('stops a running command from the panel', async () => {
    await page.locator('.activitybar .action-item a[aria-label^="Cowork"]').click();
    // A background loop stamps /tmp/alive (the task's private tmp) five times a second while the
    // command runs; after Stop, a follow-up proves the loop is gone by seeing the stamp stand still.
    // The stamp is written to a temporary file and renamed, so the kill cannot leave it empty half way.
    model.play(say(toolUse('bash', { command: '(while :; do date +%s%N > /tmp/alive.new && mv -f /tmp/alive.new /tmp/alive; sleep 0.2; done) & echo started-long; sleep 120; echo never' })));
    await panel.locator('#prompt textarea').fill('Run something long');
    await panel.locator('#delegate').click();
    await panel.locator('details.tool pre.output', { hasText: 'started-long' }).waitFor({ timeout: 240_000 });
    // mid-task, in both themes (docs/screenshots)
    await screenshotInBothThemes('06-running');
    await panel.locator('#stop-task').click();
    await panel.locator('.msg.stopped').waitFor({ timeout: 15_000 });
    await screenshot(page, '06-stopped');
    assert.equal(await panel.locator('details.tool pre.output', { hasText: /^never|\nnever/ }).count(), 0);

    model.play(say(toolUse('bash', { command: 'a=$(cat /tmp/alive); sleep 2; b=$(cat /tmp/alive); [ -n "$a" ] && [ "$a" = "$b" ] && echo loop-gone-after-stop || echo "loop-still-alive $a $b"' })), say(text('Checked.')));
    await panel.locator('#follow-up textarea').fill('Is it still running?');
    await panel.locator('#send-follow-up').click();
    const verdict = panel.locator('details.tool pre.output', { hasText: /loop-gone-after-stop|loop-still-alive/ }).first();
    await verdict.waitFor({ state: 'attached', timeout: 120_000 });
    assert.match(await verdict.textContent() ?? '', /loop-gone-after-stop/, 'a process of the stopped command kept running');
  });
});
