// The panel's page on its own in Chromium, under the same CSP the provider writes (nonce'd script,
// no inline styles), fed host messages through a stand-in acquireVsCodeApi: what a reloaded page
// shows is built from the host's snapshot alone, the editor tab shows one task without the list,
// refused and generated rows and never-allowed addresses say why, and the page logs no errors.
// No VM and no code-server: the browser journey (journey.test.ts) drives the same page in VS Code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { WebviewToHost, type HostToWebview } from '../../extension/protocol/webview';
import { ROOT, waitForInputValue } from './harness';

let server: http.Server;
let base = '';
let browser: Browser;

function page(mode: 'side' | 'editor', selected: string | null): string {
  const nonce = randomBytes(16).toString('base64');
  const csp = ["default-src 'none'", `style-src ${base} 'nonce-${nonce}'`, `font-src ${base}`, `img-src ${base} data:`, `script-src 'nonce-${nonce}'`].join('; ');
  // the stand-in for VS Code's API: what the page sends is kept for the test, state as VS Code keeps it
  const api = `window.sent = []; window.acquireVsCodeApi = () => ({ postMessage: (m) => window.sent.push(m), getState: () => (${JSON.stringify(selected ? { selected } : null)}), setState: () => undefined });`;
  return `<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta property="csp-nonce" content="${nonce}">
<link rel="stylesheet" href="${base}/dist/codicons/codicon.css">
<link rel="stylesheet" href="${base}/media/panel.css">
<title>Cowork</title></head>
<body data-mode="${mode}"><main id="app"></main>
<script nonce="${nonce}">${api}</script>
<script nonce="${nonce}" src="${base}/dist/webview.js"></script></body></html>`;
}

before(async () => {
  const built = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const pages = new Map<string, string>();
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const html = pages.get(url.pathname);
    if (html !== undefined) return void res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end(); // asked by the browser, not by the page
    const file = path.join(ROOT, path.normalize(url.pathname));
    if (!file.startsWith(path.join(ROOT, 'dist')) && !file.startsWith(path.join(ROOT, 'media'))) return void res.writeHead(404).end();
    readFile(file).then(
      (data) => res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : file.endsWith('.css') ? 'text/css' : 'application/octet-stream' }).end(data),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  pages.set('/side.html', page('side', 't1'));
  pages.set('/editor.html', page('editor', 't1'));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r));
}, { timeout: 30_000 });

const vm = { state: 'ready' as const, accelerator: 'tcg' };
const messages: HostToWebview[] = [
  { type: 'state', vm: { state: 'stopped' }, trusted: true, settingsProblem: null, scripted: false, models: ['claude-opus-5-5', 'claude-sonnet-5-5', 'claude-haiku-5-5'] },
  { type: 'tasks', tasks: [{ id: 't1', title: 'Make a note and a link', createdAt: Date.now(), state: 'running', changes: 3, mode: 'review' }], selected: 't1', history: ['Make a note and a link'] },
  {
    type: 'transcript',
    taskId: 't1',
    vm,
    events: [
      { at: 1, type: 'user', text: 'Make a note and a link' },
      { at: 2, type: 'assistant', content: [{ type: 'tool_use', id: 'b1', name: 'bash', input: { command: 'make' } }] },
    ],
    // the host's snapshot: the running command's output as it streamed, and the text being written
    live: { text: '', tools: [{ id: 'b1', name: 'bash', input: { command: 'make' }, running: true, output: { head: [{ stream: 'stdout', text: 'cc a.c\n' }, { stream: 'stderr', text: 'a.c:1: warning\n' }, { stream: 'stdout', text: 'ld\n' }], tail: [], seen: 28, omitted: 0 } }] },
    blocked: [
      { host: 'pypi.org', port: 443, rule: 'default-deny', time: 't', count: 1, canAllow: true },
      { host: '169.254.169.254', port: 80, rule: 'ip-literal', time: 't', count: 2, canAllow: false, why: '169.254.169.254 is a cloud metadata address: never reachable from the task' },
    ],
    blockedTotal: 3,
  },
  {
    type: 'changes',
    taskId: 't1',
    files: [
      { path: 'bm90ZXMudHh0', display: 'notes.txt', kind: 'added', conflicted: false, applied: false, added: 1, removed: 0, lines: ['@@ -0,0 +1,1 @@', '+notes'], truncated: false },
      { path: 'cGFzc3dkLWxpbms=', display: 'passwd-link', kind: 'symlink', conflicted: false, applied: false, added: 0, removed: 0, lines: [], truncated: false, note: 'symbolic link → /etc/passwd', refusal: 'passwd-link leads out of the workspace (/etc/passwd)' },
      ...Array.from({ length: 30 }, (_, i) => ({ path: Buffer.from(`node_modules/pkg/f${i}.js`).toString('base64'), display: `node_modules/pkg/f${i}.js`, kind: 'added' as const, conflicted: false, applied: false, added: 1, removed: 0, lines: ['+x'], truncated: false })),
    ],
  },
];

async function open(mode: 'side' | 'editor'): Promise<{ p: Page; errors: string[] }> {
  const p = await browser.newPage({ viewport: { width: mode === 'editor' ? 1300 : 380, height: 900 } });
  const errors: string[] = [];
  p.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  p.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  await p.goto(`${base}/${mode}.html`);
  await p.locator('#prompt').waitFor({ state: 'attached', timeout: 20_000 });
  for (const m of messages) await p.evaluate((msg) => window.postMessage(msg, '*'), m);
  return { p, errors };
}

describe('the panel page from the host snapshot alone', { timeout: 180_000 }, () => {
  it('a fresh side panel shows the running card, the blocked rows and the honest change rows', { timeout: 60_000 }, async () => {
    const { p, errors } = await open('side');
    const card = p.locator('details.tool.tool-running pre.output');
    await card.waitFor({ timeout: 10_000 });
    assert.equal(await card.textContent(), 'cc a.c\na.c:1: warning\nld\n');
    assert.equal(await card.locator('.stderr').textContent(), 'a.c:1: warning\n');
    assert.equal(await p.locator('.blocked-item[data-host="pypi.org"] vscode-button').count(), 1);
    assert.equal(await p.locator('.blocked-item[data-host="169.254.169.254"] vscode-button').count(), 0);
    assert.match((await p.locator('.blocked-item[data-host="169.254.169.254"] .cannot-allow').textContent()) ?? '', /Can't be allowed here: .*metadata/);
    assert.match((await p.locator('.blocked').textContent()) ?? '', /latest 2; 0 more|Blocked network requests:/);
    assert.match((await p.locator('details.file-diff.refused[data-path="passwd-link"] .refusal-reason').textContent()) ?? '', /Accept will refuse this: passwd-link leads out of the workspace \(\/etc\/passwd\)/);
    assert.equal(await p.locator('details.file-diff.refused vscode-button[aria-label^="Accept"]').count(), 0);
    assert.equal(await p.locator('#not-included').textContent(), '1 not included: see why');
    assert.match((await p.locator('details.file-diff.generated[data-folder="node_modules"] .generated-count').textContent()) ?? '', /generated: 30 files/);
    assert.equal(await p.locator('details.file-diff[data-path^="node_modules/"]').count(), 0);
    assert.match((await p.locator('#accept-all').textContent()) ?? '', /Accept 1\b/);
    assert.match((await p.locator('#task-vm-state').textContent()) ?? '', /This task's VM: ready/);
    // Accept All, and the history key
    await p.locator('#accept-all').click();
    await p.locator('#prompt textarea').focus();
    await p.locator('#prompt textarea').press('ArrowUp');
    await waitForInputValue(p.locator('#prompt textarea'), 'Make a note and a link', 'ArrowUp in the empty prompt brings back the last prompt');
    const sent = (await p.evaluate(() => (window as unknown as { sent: { type: string }[] }).sent)).map((m) => m.type);
    assert.deepEqual(sent.slice(0, 2), ['ready', 'selectTask'], 'a new page asks the host for everything');
    assert.ok(sent.includes('acceptAll'));
    assert.deepEqual(errors, [], `console errors (CSP among them): ${errors.join('\n')}`);
    await p.close();
  });

  it('the editor tab shows the one task, wide, without the list and the prompt', { timeout: 60_000 }, async () => {
    const { p, errors } = await open('editor');
    await p.locator('details.tool.tool-running').waitFor({ timeout: 10_000 });
    assert.equal(await p.locator('ul.tasks').isVisible(), false);
    assert.equal(await p.locator('#prompt').isVisible(), false);
    assert.equal(await p.locator('.vm').isVisible(), false);
    const t = await p.locator('.task-main').boundingBox();
    const c = await p.locator('.task-aside').boundingBox();
    assert.ok(t && c && c.x >= t.x + t.width, 'the changes are beside the transcript');
    assert.deepEqual(errors, [], `console errors (CSP among them): ${errors.join('\n')}`);
    await p.close();
  });

  it('the prompt box: model picker, @mention completion, a pasted image, the paperclip, and Ctrl+Enter sends them all', { timeout: 60_000 }, async () => {
    const { p, errors } = await open('side');
    const sent = async (): Promise<WebviewToHost[]> => p.evaluate(() => (window as unknown as { sent: WebviewToHost[] }).sent);
    const picker = p.locator('select#model');
    await picker.waitFor({ timeout: 10_000 });
    assert.deepEqual(await picker.locator('option').allTextContents(), ['claude-opus-5-5', 'claude-sonnet-5-5', 'claude-haiku-5-5']);
    assert.equal(await picker.inputValue(), 'claude-opus-5-5', 'cowork.model is preselected');
    await picker.selectOption('claude-haiku-5-5');
    // @ completion: the page asks the host, shows its answer, and Enter takes the highlighted path
    const box = p.locator('#prompt textarea');
    await box.fill('');
    await box.pressSequentially('Look at @sr');
    const ask = await waitForSent(p, (m) => m.type === 'findFiles' && m.query === 'sr', 'a findFiles request for "sr"');
    assert.equal(ask.type, 'findFiles');
    await p.evaluate((m) => window.postMessage(m, '*'), { type: 'fileMatches', requestId: ask.type === 'findFiles' ? ask.requestId : -1, paths: ['src/a.ts', 'src/b.ts'] } satisfies HostToWebview);
    await p.locator('.mention-match', { hasText: 'src/b.ts' }).waitFor({ timeout: 5_000 });
    await box.press('ArrowDown');
    await box.press('Enter');
    await waitForInputValue(box, 'Look at @src/b.ts ', 'Enter in the completion list inserts the path');
    assert.equal(await p.locator('.mention-match').count(), 0, 'the list closes');
    // the paperclip asks the host, which answers with the mention to insert
    await p.locator('#attach-editor').click();
    await waitForSent(p, (m) => m.type === 'attachEditor', 'an attachEditor request');
    await p.evaluate((m) => window.postMessage(m, '*'), { type: 'insertPrompt', text: '@README.md:3-9 ' } satisfies HostToWebview);
    await waitForInputValue(box, 'Look at @src/b.ts @README.md:3-9 ', 'the paperclip\'s mention is inserted at the caret');
    // paste: a PNG becomes a chip; an SVG is refused in words
    const paste = (name: string, type: string, b64: string): Promise<void> =>
      p.evaluate(
        ([n, t, d]) => {
          const dt = new DataTransfer();
          dt.items.add(new File([Uint8Array.from(atob(d!), (c) => c.charCodeAt(0))], n!, { type: t! }));
          document.querySelector('#prompt')!.shadowRoot!.querySelector('textarea')!.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, composed: true, cancelable: true }));
        },
        [name, type, b64],
      );
    await paste('pixel.png', 'image/png', PNG);
    await p.locator('.image-chip img.thumb').waitFor({ timeout: 5_000 });
    await paste('logo.svg', 'image/svg+xml', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>').toString('base64'));
    await p.locator('.notice.transient', { hasText: 'Only PNG, JPEG, GIF and WebP images' }).waitFor({ timeout: 5_000 });
    assert.equal(await p.locator('.image-chip').count(), 1);
    await box.press('Control+Enter');
    const delegate = await waitForSent(p, (m) => m.type === 'delegate', 'the delegate message');
    assert.deepEqual(delegate, { type: 'delegate', prompt: 'Look at @src/b.ts @README.md:3-9', model: 'claude-haiku-5-5', images: [{ mediaType: 'image/png', data: PNG }] });
    await waitForInputValue(box, '', 'the box empties after sending');
    assert.equal(await p.locator('.image-chip').count(), 0, 'the images went with the message');
    // a notice from the host (e.g. a model the host refuses) is shown whole
    await p.evaluate((m) => window.postMessage(m, '*'), { type: 'notice', message: 'Cowork: "x" is not one of your models (cowork.model, cowork.models); no task was started.' } satisfies HostToWebview);
    await p.locator('.notice.transient', { hasText: 'no task was started' }).waitFor({ timeout: 5_000 });
    assert.ok((await sent()).every((m) => WebviewToHost.safeParse(m).success), 'everything the page sent passes the host\'s schema');
    // every icon names a glyph the codicon font has (an unknown name draws an empty button)
    const blank = await p.evaluate(() => Array.from(document.querySelectorAll('.codicon')).filter((i) => ['none', 'normal', '""'].includes(getComputedStyle(i, '::before').content)).map((i) => i.className));
    assert.deepEqual(blank, [], 'icons without a glyph');
    assert.deepEqual(errors, [], `console errors (CSP among them): ${errors.join('\n')}`);
    await p.close();
  });
});

// a 1×1 PNG
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

/** The first message the page sent that matches, waiting for it with a deadline that names it. */
async function waitForSent(p: Page, match: (m: WebviewToHost) => boolean, what: string, timeoutMs = 5_000): Promise<WebviewToHost> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await p.evaluate(() => (window as unknown as { sent: WebviewToHost[] }).sent);
    const found = all.find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}; the page sent: ${all.map((m) => m.type).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
