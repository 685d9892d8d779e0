// The end-to-end harness: a real VS Code (code-server 4.100.3) with the packaged .vsix installed,
// a throwaway profile, a sample workspace, and Debian's Chromium driven by playwright-core.
// Everything it starts is in its own process group and torn down by group, even on failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Frame, type FrameLocator, type Locator, type Page } from 'playwright-core';
import { defaultCacheDir } from '../../vm-host/image/cacheDir';
import { freePort } from '../../vm-host/vm';

export const ROOT = path.resolve(__dirname, '..', '..');
export const SCREENSHOTS = path.join(ROOT, '.test-work', 'e2e-screenshots');
export const E2E_API_KEY = 'sk-ant-api03-e2e-scripted-key-0123456789';

export function codeServerBin(): string {
  return path.join(defaultCacheDir(), 'code-server-4.100.3', 'node_modules', '.bin', 'code-server');
}

/** Packages the extension as a .vsix (vsce runs the production build first). */
export function packageVsix(out = path.join(ROOT, '.test-work', 'cowork.vsix')): string {
  const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'vsce'), ['package', '--no-dependencies', '--no-rewrite-relative-links', '--allow-missing-repository', '--out', out], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vsce package failed:\n${r.stdout}\n${r.stderr}`);
  return out;
}

export interface CodeServer {
  readonly url: string;
  readonly workspace: string;
  readonly dir: string;
  stop(): Promise<void>;
}

export async function startCodeServer(opts: { vsix?: string; settings: Record<string, unknown>; env?: Record<string, string>; trust?: boolean }): Promise<CodeServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-e2e-'));
  const userData = path.join(dir, 'user-data');
  const extensions = path.join(dir, 'extensions');
  const workspace = path.join(dir, 'workspace');
  await cp(path.join(ROOT, 'demo', 'workspace'), workspace, { recursive: true });
  await mkdir(path.join(userData, 'User'), { recursive: true });
  const settings: Record<string, unknown> = { 'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': opts.trust ?? false, 'workbench.tips.enabled': false, 'telemetry.telemetryLevel': 'off', ...opts.settings };
  const settingsFile = path.join(userData, 'User', 'settings.json');
  await writeFile(settingsFile, JSON.stringify(settings, null, 2));
  // code-server's window is a remote one: "machine"-scoped settings (cowork.vm.*) count only from
  // the remote machine's settings, not from the user's (VS Code's LOCAL_MACHINE_SCOPES)
  await mkdir(path.join(userData, 'Machine'), { recursive: true });
  // no warm VM (cowork.vm.warm) unless a test asks for one: it would add a boot to every window
  await writeFile(path.join(userData, 'Machine', 'settings.json'), JSON.stringify({ 'cowork.vm.warm': false, ...opts.settings }, null, 2));
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    XDG_DATA_HOME: path.join(dir, 'data'),
    XDG_CACHE_HOME: path.join(dir, 'cache'),
    COWORK_CACHE_DIR: defaultCacheDir(),
    ...opts.env,
  };
  const bin = codeServerBin();
  if (opts.vsix) {
    const install = spawnSync(bin, ['--extensions-dir', extensions, '--user-data-dir', userData, '--install-extension', opts.vsix], { env, encoding: 'utf8' });
    if (install.status !== 0) throw new Error(`installing the .vsix failed: ${install.stderr}`);
  }
  const port = await freePort();
  const args = ['--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--user-data-dir', userData, '--extensions-dir', extensions, '--disable-telemetry', '--disable-update-check', ...(opts.trust ? [] : ['--disable-workspace-trust']), workspace];
  const child: ChildProcess = spawn(bin, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`code-server did not start:\n${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    workspace,
    dir,
    stop: async () => {
      if (child.pid) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
        await new Promise((r) => setTimeout(r, 1500));
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      // keep the workbench's logs (the extension's own log among them) for whoever reads a failure
      await cp(path.join(userData, 'logs'), path.join(ROOT, '.test-work', 'e2e-logs', path.basename(dir)), { recursive: true }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser(): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'cowork-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** The Cowork panel's content frame (webview → active-frame). */
export function panelFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
}

/**
 * A Cowork page by where it is shown: the side panel ('side') or a task's editor tab ('editor',
 * Open Task in Editor). Found by the mode the provider writes on its <body>, so it works with both open.
 */
export async function webviewFrame(page: Page, mode: 'side' | 'editor', timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      const m = await f.evaluate(() => document.body?.dataset.mode ?? null).catch(() => null);
      if (m === mode && (await f.locator('#app').count().catch(() => 0)) > 0) return f;
    }
    if (Date.now() > deadline) throw new Error(`no Cowork ${mode === 'side' ? 'side panel' : 'editor tab'} page within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
}

/** Picks a colour theme the way a person does (Preferences: Color Theme). */
export async function selectTheme(page: Page, theme: string): Promise<void> {
  // not runCommand: "Browse Color Themes in Marketplace" may rank first, so click the exact entry
  await page.keyboard.press('F1');
  await page.locator('.quick-input-widget input').fill('>Preferences: Color Theme');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: /Preferences: Color Theme(?!s)/ }).first().click();
  // the theme picker replaces the command palette: wait for it before typing into it
  await page.locator('.quick-input-widget input[placeholder*="Color Theme"]').waitFor({ timeout: 15_000 }).catch(async (err: unknown) => {
    await screenshot(page, 'fail-theme-picker');
    throw err;
  });
  await page.locator('.quick-input-widget input').fill(theme);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: theme }).first().waitFor({ timeout: 15_000 });
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
}

export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
  await page.keyboard.press('Enter');
}

// The toolkit's text area copies a value set from script into its inner <textarea> on its next
// update, not at once (CI once read '' right after ArrowUp): poll the field until it shows `expected`,
// failing with what it waited for and what it saw.
export async function waitForInputValue(field: Locator, expected: string, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = await field.inputValue();
  while (seen !== expected) {
    if (Date.now() > deadline) throw new Error(`${what}: expected ${JSON.stringify(expected)} within ${timeoutMs} ms, the field shows ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 50));
    seen = await field.inputValue();
  }
}
