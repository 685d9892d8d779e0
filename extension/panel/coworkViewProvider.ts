// The Cowork side panel (a WebviewView). Owns the bridge: queues messages until the webview says
// it is ready, validates everything the webview sends, and never lets the page load anything but
// our own bundle (strict CSP with a nonce).
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { Commands } from '../ids';
import type { HostToWebview} from '../protocol/webview';
import { WebviewToHost } from '../protocol/webview';
import type { WorkspaceVm } from '../session/workspaceVm';
import { describeProblems } from '../config/settings';
import { readSettings } from '../workbench/settings';

export class CoworkViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private ready = false;
  private queue: HostToWebview[] = [];
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly vm: () => WorkspaceVm | undefined,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.ready = false;
    view.webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'dist'), vscode.Uri.joinPath(this.extensionUri, 'media')] };
    view.webview.html = this.html(view.webview);
    this.disposables.push(
      view.webview.onDidReceiveMessage((raw: unknown) => void this.onMessage(raw)),
      view.onDidDispose(() => {
        this.view = undefined;
        this.ready = false;
      }),
    );
  }

  /** Sends the current state (call on any change). */
  pushState(): void {
    const vm = this.vm();
    const settings = readSettings();
    this.post({
      type: 'state',
      vm: vm?.current ?? { state: 'stopped', detail: 'Open a folder to use Cowork.' },
      trusted: vscode.workspace.isTrusted,
      settingsProblem: settings.ok ? null : describeProblems(settings.problems),
    });
  }

  private post(msg: HostToWebview): void {
    if (!this.view || !this.ready) {
      if (msg.type === 'state') this.queue = this.queue.filter((m) => m.type !== 'state');
      this.queue.push(msg);
      return;
    }
    void this.view.webview.postMessage(msg);
  }

  private async onMessage(raw: unknown): Promise<void> {
    const parsed = WebviewToHost.safeParse(raw);
    if (!parsed.success) {
      this.log.warn(`[panel] ignored an invalid message from the webview: ${parsed.error.message}`);
      return;
    }
    const msg = parsed.data;
    switch (msg.type) {
      case 'ready':
        this.ready = true;
        for (const m of this.queue.splice(0)) void this.view?.webview.postMessage(m);
        this.pushState();
        return;
      case 'startVm':
        await vscode.commands.executeCommand(Commands.startVm);
        return;
      case 'stopVm':
        await vscode.commands.executeCommand(Commands.stopVm);
        return;
      case 'delegate':
        await vscode.commands.executeCommand(Commands.delegateTask, msg.prompt);
        return;
      case 'runCommand': {
        try {
          const r = await vscode.commands.executeCommand<{ code: number | null; signal: string | null; output: string } | undefined>(Commands.runInVm, msg.command);
          if (r) this.post({ type: 'commandResult', command: msg.command, output: r.output, exit: r.code !== null ? `exit ${r.code}` : `killed by ${r.signal}` });
        } catch (err) {
          this.post({ type: 'commandResult', command: msg.command, output: err instanceof Error ? err.message : String(err), exit: 'error' });
        }
        return;
      }
    }
  }

  private html(webview: vscode.Webview): string {
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js'));
    const css = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'panel.css'));
    const codicons = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'codicons', 'codicon.css'));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource} 'nonce-${nonce}'`,
      `font-src ${webview.cspSource}`,
      `img-src ${webview.cspSource} data:`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${codicons.toString()}">
<link rel="stylesheet" href="${css.toString()}">
<title>Cowork</title>
</head>
<body>
<main id="app" aria-live="polite"></main>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
