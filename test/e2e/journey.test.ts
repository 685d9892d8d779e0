// The whole user journey in a real VS Code in a real browser, with the scripted Messages API
// server as the model: open the Cowork panel, delegate a task, watch the transcript stream, see the
// VM boot, see a blocked request, review the change in Source Control, accept it, check the file on
// disk; then stop a running command. Screenshots go to .test-work/e2e-screenshots/.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Frame, Page } from 'playwright-core';
import { demoConversation } from '../support/demoConversation';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { E2E_API_KEY, launchBrowser, packageVsix, panelFrame, runCommand, screenshot, SCREENSHOTS, selectTheme, startCodeServer, webviewFrame, waitForInputValue, type CodeServer } from './harness';

let model: ScriptedModel;
let server: CodeServer;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
/** the side panel's page (a FrameLocator, or a Frame when an editor tab's page is open too) */
let panel: Pick<Frame, 'locator'>;
/** every console error and uncaught page error, from the workbench and from every frame (the panel's too) */
const consoleErrors: string[] = [];

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
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location().url || 'page'})`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
}, { timeout: 300_000 });

after(async () => {
  console.log(`screenshots: ${SCREENSHOTS}`);
  await browser?.close().catch(() => undefined);
  await server?.stop();
  await model?.close();
}, { timeout: 60_000 });

// a 1×1 PNG, pasted into the follow-up box
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

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

/**
 * Errors code-server's own workbench logs here whatever the extension does, matched narrowly: it
 * does not ship Microsoft's vsda module (404s), this machine cannot reach the extension gallery,
 * and Reload Window shuts a web workbench down with these two complaints. Anything else fails the run.
 */
const WORKBENCH_NOISE: readonly RegExp[] = [
  /^Failed to load resource: the server responded with a status of 404 \(Not Found\) \(http:\/\/127\.0\.0\.1:\d+\/[^ ]*\/static\/node_modules\/vsda\/rust\/web\/vsda(_bg\.wasm|\.js)\)$/,
  /^Failed to load resource: net::ERR_NAME_NOT_RESOLVED \(https:\/\/open-vsx\.org\/vscode\/gallery\/[^ ]*\)$/,
  /^%c {2}ERR color: #f33 \[lifecycle\] Long running operations during shutdown are unsupported in the web \(id: join\.[A-Za-z]+\)/,
  /^%c {2}ERR color: #f33 Unable to write file 'vscode-log:[^']*' \(Error: IndexedDB database 'vscode-web-db' is closed\.\)/,
];

const COWORK = '.activitybar .action-item a[aria-label^="Cowork"]';

/** Hides the side bar with the panel (its webview is destroyed: retainContextWhenHidden is off) and shows it again. */
async function hideAndShowPanel(): Promise<void> {
  const sidebar = page.locator('.part.sidebar');
  await page.locator(COWORK).click();
  await sidebar.waitFor({ state: 'hidden', timeout: 20_000 }).catch(async (err: unknown) => {
    await screenshot(page, 'fail-hide-panel');
    throw new Error('clicking the Cowork activity bar entry did not hide the side bar', { cause: err });
  });
  // Shown again by the workbench's own command (a second click on the entry right after the first
  // left code-server 4.100's side bar empty in two runs); the side bar brings back its last view, Cowork's.
  await runCommand(page, 'View: Toggle Primary Side Bar Visibility');
  await sidebar.waitFor({ state: 'visible', timeout: 20_000 }).catch(async (err: unknown) => {
    await screenshot(page, 'fail-show-sidebar');
    throw new Error('View: Toggle Primary Side Bar Visibility did not show the side bar again', { cause: err });
  });
  panel = panelFrame(page);
  await panel.locator('#prompt').waitFor({ timeout: 60_000 }).catch(async (err: unknown) => {
    await screenshot(page, 'fail-show-panel');
    const frames = await page.locator('iframe.webview').evaluateAll((fs) => fs.map((f) => `${f.className} ${f.getAttribute('src')?.replace(/^.*purpose=/, 'purpose=').slice(0, 40) ?? ''} visible=${(f as HTMLElement).offsetParent !== null}`));
    throw new Error(`the panel did not come back after hide and show (webview frames: ${frames.join(' | ')})`, { cause: err });
  });
}

/** The webview's page loaded again from scratch, the extension host unchanged (Developer: Reload Webviews). */
async function reloadWebviews(): Promise<void> {
  await panel.locator('#app').evaluate((e) => e.setAttribute('data-old-page', '1'));
  await runCommand(page, 'Developer: Reload Webviews');
  panel = panelFrame(page);
  await panel.locator('#app:not([data-old-page])').waitFor({ timeout: 60_000 });
  await panel.locator('#prompt').waitFor({ timeout: 60_000 });
}

describe('the user journey in a real VS Code', { timeout: 1_800_000 }, () => {
  it('opens the Cowork panel from the activity bar', { timeout: 400_000 }, async () => {
    const entry = page.locator('.activitybar .action-item a[aria-label^="Cowork"]');
    await entry.waitFor({ timeout: 60_000 });
    await entry.click();
    panel = panelFrame(page);
    await panel.locator('#prompt').waitFor({ timeout: 60_000 });
    await screenshot(page, '01-panel');
  });

  it('delegates a task and streams the transcript, the VM state and a bash card with its output', { timeout: 400_000 }, async () => {
    model.play(...demoConversation());
    await panel.locator('#prompt textarea').fill('Make slugify handle accents');
    await panel.locator('#delegate').click();
    await panel.locator('#task-vm-state', { hasText: /booting|ready/ }).waitFor({ timeout: 60_000 });
    await screenshot(page, '02-booting');
    await panel.locator('#task-vm-state', { hasText: "This task's VM: ready" }).waitFor({ timeout: 240_000 });
    const bash = panel.locator('details.tool[data-tool="bash"]').first();
    await bash.waitFor({ timeout: 120_000 });
    // finished tool cards are collapsed: their output is in the page, not necessarily visible
    await panel.locator('details.tool[data-tool="bash"] pre.output', { hasText: 'slugify.py' }).first().waitFor({ state: 'attached', timeout: 120_000 });
    await panel.locator('.msg.assistant', { hasText: 'creme-brulee-deja-vu' }).waitFor({ timeout: 240_000 });
    await panel.locator('details.tool pre.output', { hasText: 'creme-brulee-deja-vu' }).first().waitFor({ state: 'attached', timeout: 10_000 });
    await screenshot(page, '03-transcript');
  });

  it('shows the task\'s diff, its VM\'s cpu, memory and disk, and looks native in a light theme', { timeout: 400_000 }, async () => {
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

  it('shows the blocked network request in the panel', { timeout: 400_000 }, async () => {
    await panel.locator('.blocked-item', { hasText: 'blocked.example' }).waitFor({ timeout: 30_000 });
    // not on the list is something the person may allow
    await panel.locator('.blocked-item[data-host="blocked.example"] vscode-button', { hasText: 'Allow for this task' }).first().waitFor({ timeout: 5_000 });
  });

  it('after the task, hiding and showing the panel and reloading its page keep the transcript, plan, blocked requests, changes and VM state', { timeout: 400_000 }, async () => {
    const check = async (when: string): Promise<void> => {
      const wait = async (what: string, sel: string, hasText: string | RegExp, state: 'visible' | 'attached' = 'visible'): Promise<void> => {
        await panel.locator(sel, { hasText }).first().waitFor({ state, timeout: 30_000 }).catch((err: unknown) => {
          throw new Error(`${when}: the panel lost ${what}`, { cause: err });
        });
      };
      await wait('the transcript', '.msg.assistant', 'creme-brulee-deja-vu');
      await wait('the bash card\'s output', 'details.tool pre.output', 'slugify.py', 'attached');
      await wait('the plan', '.plan li', 'Run it');
      await wait('the blocked request', '.blocked-item', 'blocked.example');
      await wait('the change', 'details.file-diff[data-path="slugify.py"]', 'slugify.py');
      await wait("the task's VM state", '#task-vm-state', /This task's VM: (ready|stopped)/);
      await wait('the usage', '.status-strip', /in · .* out/);
    };
    await hideAndShowPanel();
    await check('after hide and show');
    await reloadWebviews();
    await check('after Reload Webviews');
  });

  it('opens the task in an editor tab: the same task UI, wide, transcript beside the changes', { timeout: 400_000 }, async () => {
    await panel.locator('#open-in-editor').click();
    await page.locator('.tabs-container .tab', { hasText: 'Cowork: Make slugify handle accents' }).waitFor({ timeout: 30_000 });
    const editor = await webviewFrame(page, 'editor');
    await editor.locator('.msg.assistant', { hasText: 'creme-brulee-deja-vu' }).waitFor({ timeout: 60_000 });
    await editor.locator('details.file-diff[data-path="slugify.py"]').waitFor({ timeout: 30_000 });
    await editor.locator('.blocked-item', { hasText: 'blocked.example' }).first().waitFor({ timeout: 30_000 });
    assert.equal(await editor.locator('#prompt').isVisible(), false, 'the editor tab is the task, not the prompt');
    assert.equal(await editor.locator('ul.tasks').isVisible(), false, 'the editor tab is the task, not the task list');
    // wide: the transcript and the changes side by side
    const t = await editor.locator('.task-main').boundingBox();
    const c = await editor.locator('.task-aside').boundingBox();
    assert.ok(t && c && c.x > t.x + t.width - 1, `the changes are beside the transcript (transcript ${JSON.stringify(t)}, changes ${JSON.stringify(c)})`);
    await screenshotInBothThemes('09-task-editor');
    await runCommand(page, 'View: Close All Editors');
    await page.locator('.tabs-container .tab', { hasText: 'Cowork: Make slugify handle accents' }).waitFor({ state: 'detached', timeout: 20_000 });
    panel = panelFrame(page);
  });

  it('shows the change in Source Control, opens its diff, and accepting writes the file', { timeout: 400_000 }, async () => {
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
    // the accepted change left the change set: its diff closes instead of showing a change that no longer exists
    await page.locator('.tabs-container .tab', { hasText: 'slugify.py (Cowork' }).waitFor({ state: 'detached', timeout: 20_000 }).catch(async (err: unknown) => {
      await screenshot(page, 'fail-diff-still-open');
      throw new Error('the diff of the accepted slugify.py is still open', { cause: err });
    });
    await screenshot(page, '05-accepted');
  });

  it('stops a running command from the panel; mid-task, hiding the panel and reloading it lose nothing; stdout and stderr in order', { timeout: 400_000 }, async () => {
    await page.locator(COWORK).click();
    panel = panelFrame(page);
    // A background loop stamps /tmp/alive (the task's private tmp) five times a second while the
    // command runs; after Stop, a follow-up proves the loop is gone by seeing the stamp stand still.
    // The stamp is written to a temporary file and renamed, so the kill cannot leave it empty half way.
    model.play(say(toolUse('bash', { command: '(while :; do date +%s%N > /tmp/alive.new && mv -f /tmp/alive.new /tmp/alive; sleep 0.2; done) & echo started-long; sleep 0.5; echo to-stderr >&2; sleep 0.5; echo after-stderr; sleep 120; echo never' })));
    await panel.locator('#prompt textarea').fill('Run something long');
    await panel.locator('#delegate').click();
    await panel.locator('details.tool pre.output', { hasText: 'after-stderr' }).waitFor({ timeout: 240_000 });
    // interleaved as it arrived, stderr marked
    const running = panel.locator('details.tool.tool-running pre.output').first();
    assert.match((await running.textContent()) ?? '', /started-long\nto-stderr\nafter-stderr/);
    assert.equal(await running.locator('.stderr').textContent(), 'to-stderr\n');
    // mid-task: the view is destroyed and rebuilt from the host's state, twice; the command keeps running
    for (const [how, again] of [['hide and show', hideAndShowPanel], ['Reload Webviews', reloadWebviews]] as const) {
      await again();
      const card = panel.locator('details.tool.tool-running pre.output', { hasText: 'after-stderr' }).first();
      await card.waitFor({ timeout: 30_000 }).catch((err: unknown) => {
        throw new Error(`mid-task, after ${how}: the running command's card or its output is gone`, { cause: err });
      });
      assert.match((await card.textContent()) ?? '', /started-long\nto-stderr\nafter-stderr/, `after ${how}: the order is kept`);
      assert.equal(await card.locator('.stderr').textContent(), 'to-stderr\n', `after ${how}: stderr is still marked`);
      await panel.locator('#stop-task').waitFor({ timeout: 10_000 });
      await panel.locator('.msg.user', { hasText: 'Run something long' }).waitFor({ timeout: 10_000 });
    }
    // mid-task, in both themes (docs/screenshots)
    await screenshotInBothThemes('06-running');
    await panel.locator('#stop-task').click();
    await panel.locator('.msg.stopped').waitFor({ timeout: 15_000 });
    await screenshot(page, '06-stopped');
    assert.equal(await panel.locator('details.tool pre.output', { hasText: /^never|\nnever/ }).count(), 0);

    model.play(say(toolUse('bash', { command: 'a=$(cat /tmp/alive); sleep 2; b=$(cat /tmp/alive); [ -n "$a" ] && [ "$a" = "$b" ] && echo loop-gone-after-stop || echo "loop-still-alive $a $b"' })), say(text('Checked.')));
    await panel.locator('#follow-up textarea').fill('Is it still running?');
    // with an image pasted into the follow-up box: it goes to the model as an image block
    await panel.locator('#follow-up').evaluate((box, png) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(png), (c) => c.charCodeAt(0))], 'pixel.png', { type: 'image/png' }));
      box.shadowRoot!.querySelector('textarea')!.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, composed: true, cancelable: true }));
    }, PNG);
    await panel.locator('.follow-up .image-chip img.thumb').waitFor({ timeout: 15_000 });
    const asked = model.requests.length;
    await panel.locator('#send-follow-up').click();
    const verdict = panel.locator('details.tool pre.output', { hasText: /loop-gone-after-stop|loop-still-alive/ }).first();
    await verdict.waitFor({ state: 'attached', timeout: 120_000 });
    assert.match(await verdict.textContent() ?? '', /loop-gone-after-stop/, 'a process of the stopped command kept running');
    const followUp = model.requests[asked]!.body.messages.at(-1)!.content as { type: string; source?: { media_type: string; data: string } }[];
    assert.ok(followUp.some((b) => b.type === 'image' && b.source?.media_type === 'image/png' && b.source.data === PNG), `the pasted image reached the model: ${followUp.map((b) => b.type).join(', ')}`);
    await panel.locator('.msg.user', { hasText: 'Is it still running?' }).locator('img.thumb').waitFor({ timeout: 15_000 });
    // the stopped card says so, and (after a reload of the page) still shows what it printed
    await reloadWebviews();
    const stopped = panel.locator('details.tool', { hasText: 'started-long' }).first();
    await stopped.locator('.badge.flag', { hasText: 'stopped' }).waitFor({ timeout: 30_000 });
    assert.match((await stopped.locator('pre.output').textContent()) ?? '', /started-long\nto-stderr\nafter-stderr/);
  });

  it('marks the changes Accept would refuse before Accept, leaves them out of Accept All, and offers no Allow for addresses never allowed', { timeout: 400_000 }, async () => {
    model.play(
      say(toolUse('bash', { command: 'echo notes > /workspace/notes.txt; ln -s /etc/passwd /workspace/passwd-link; mkdir -p /workspace/node_modules/pkg && for i in $(seq 1 30); do echo "module.exports = $i" > /workspace/node_modules/pkg/f$i.js; done; curl -sS -m 5 -o /dev/null http://169.254.169.254/latest/meta-data/ || true; curl --noproxy "" -sS -m 5 -o /dev/null http://127.0.0.1:8080/ || true' })),
      say(text('Made a note and a link.')),
    );
    // the up arrow brings back what was sent last (the follow-up); Ctrl+Enter sends
    await panel.locator('#prompt textarea').focus();
    await panel.locator('#prompt textarea').press('ArrowUp');
    await waitForInputValue(panel.locator('#prompt textarea'), 'Is it still running?', 'ArrowUp in the empty prompt brings back the last follow-up');
    await panel.locator('#prompt textarea').fill('Make a note and a link');
    await panel.locator('#prompt textarea').press('Control+Enter');
    await panel.locator('.msg.assistant', { hasText: 'Made a note and a link.' }).waitFor({ timeout: 240_000 });
    const link = panel.locator('details.file-diff.refused[data-path="passwd-link"]');
    await link.waitFor({ timeout: 60_000 });
    assert.match((await link.locator('.refusal-reason').textContent()) ?? '', /Accept will refuse this: .*\S/);
    assert.equal(await link.locator('vscode-button[aria-label^="Accept"]').count(), 0, 'a refused row has no Accept button');
    await panel.locator('details.file-diff[data-path="notes.txt"]').waitFor({ timeout: 30_000 });
    assert.equal(await panel.locator('#not-included').textContent(), '1 not included: see why');
    // the generated folder: one collapsed row, not 30, and not part of Accept All
    const generated = panel.locator('details.file-diff.generated[data-folder="node_modules"]');
    await generated.waitFor({ timeout: 30_000 });
    assert.match((await generated.locator('.generated-count').textContent()) ?? '', /generated: 30 files/);
    assert.equal(await generated.evaluate((d) => (d as HTMLDetailsElement).open), false, 'collapsed');
    assert.equal(await panel.locator('details.file-diff[data-path^="node_modules/"]').count(), 0, 'no row per generated file');
    assert.match((await panel.locator('#accept-all').textContent()) ?? '', /Accept 1\b/);
    // the metadata and loopback addresses: no Allow button, the reason instead
    for (const host of ['169.254.169.254', '127.0.0.1']) {
      const row = panel.locator(`.blocked-item[data-host="${host}"]`).first();
      await row.waitFor({ timeout: 30_000 });
      assert.equal(await row.locator('vscode-button').count(), 0, `no Allow for ${host}`);
      assert.match((await row.locator('.cannot-allow').textContent()) ?? '', /Can't be allowed here: .*never reachable/);
    }
    await screenshotInBothThemes('07-refused-rows');
    await panel.locator('#accept-all').click();
    const notes = path.join(server.workspace, 'notes.txt');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !(await readFile(notes, 'utf8').catch(() => ''))) await new Promise((r) => setTimeout(r, 250));
    assert.equal(await readFile(notes, 'utf8'), 'notes\n', 'Accept All wrote the acceptable change');
    await assert.rejects(readFile(path.join(server.workspace, 'passwd-link'), 'utf8'), 'the refused link was not written');
    await assert.rejects(readFile(path.join(server.workspace, 'node_modules', 'pkg', 'f1.js'), 'utf8'), 'the generated folder was not written by Accept All');
    await panel.locator('details.file-diff.refused[data-path="passwd-link"]').waitFor({ timeout: 30_000 });
  });

  it('after a window reload (a new extension host) the task still shows its transcript and blocked requests, and its editor tab comes back', { timeout: 400_000 }, async () => {
    await panel.locator('#open-in-editor').click();
    await (await webviewFrame(page, 'editor')).locator('.msg.assistant', { hasText: 'Made a note and a link.' }).waitFor({ timeout: 60_000 });
    await runCommand(page, 'Developer: Reload Window');
    await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
    const entry = page.locator(COWORK);
    await entry.waitFor({ timeout: 60_000 });
    // the editor tab, restored by its serializer, shows the task again from the host's state
    const editor = await webviewFrame(page, 'editor', 90_000);
    await editor.locator('.msg.assistant', { hasText: 'Made a note and a link.' }).waitFor({ timeout: 60_000 });
    await editor.locator('.blocked-item[data-host="169.254.169.254"] .cannot-allow').first().waitFor({ timeout: 30_000 });
    await screenshot(page, '08-editor-after-reload');
    // the reload may restore the side bar with the panel open: click only when it is not
    panel = await webviewFrame(page, 'side', 15_000).catch(async () => {
      await entry.click();
      return webviewFrame(page, 'side');
    });
    await panel.locator('#prompt').waitFor({ timeout: 60_000 });
    await panel.locator('.task-item', { hasText: 'Make a note and a link' }).first().click();
    await panel.locator('.msg.assistant', { hasText: 'Made a note and a link.' }).waitFor({ timeout: 60_000 });
    await panel.locator('.blocked-item[data-host="169.254.169.254"] .cannot-allow').first().waitFor({ timeout: 30_000 });
    await screenshot(page, '08-after-reload');
  });

  it('logged no console errors (no CSP violations) in the workbench or the panel', { timeout: 400_000 }, async () => {
    // the panel's console reaches this list (its page is a cross-origin frame two levels down)
    await panel.locator('#app').evaluate(() => console.error('cowork-console-probe'));
    const deadline = Date.now() + 10_000;
    while (!consoleErrors.some((e) => e.includes('cowork-console-probe')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(consoleErrors.some((e) => e.includes('cowork-console-probe')), 'the panel\'s console errors are seen by the test');
    const errors = consoleErrors.filter((e) => !e.includes('cowork-console-probe') && !WORKBENCH_NOISE.some((n) => n.test(e)));
    assert.deepEqual(errors, [], `console errors:\n${errors.join('\n')}`);
  });
});
