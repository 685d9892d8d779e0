// The Cowork side panel (a WebviewView). Owns the bridge: queues messages until the webview says
// it is ready, validates everything the webview sends, forwards the selected task's live events,
// and never lets the page load anything but our own bundle (strict CSP with a nonce).
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { describeProblems } from '../config/settings';
import { Commands } from '../ids';
import type { HostToWebview, TaskSummary } from '../protocol/webview';
import { WebviewToHost } from '../protocol/webview';
import type { LiveEvent } from '../agent/loop';
import type { ReviewController } from '../review/reviewController';
import type { Task } from '../session/task';
import type { TaskManager } from '../session/taskManager';
import type { WorkspaceVm } from '../session/workspaceVm';
import { readSettings } from '../workbench/settings';
import { changeFingerprint } from '../changes/changeSet';
import { generatedFolder } from './generated';
import { allowability, TaskPanelState } from './taskPanelState';

/** LiveEvent as the webview protocol carries it (unknown tool input stays unknown). */
function liveView(e: LiveEvent): Extract<HostToWebview, { type: 'live' }>['event'] {
  return e;
}

export interface PanelDeps {
  readonly extensionUri: vscode.Uri;
  readonly vm: () => WorkspaceVm | undefined;
  readonly tasks: () => Promise<TaskManager | undefined>;
  readonly log: vscode.LogOutputChannel;
  readonly scripted: boolean;
  /** the review (SourceControl) of a task */
  readonly review: (taskId: string) => ReviewController | undefined;
}

/** How often the selected task's VM usage (cpu, memory, disk) is sampled while the panel shows it. */
const USAGE_INTERVAL_MS = 2000;

export class CoworkViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private ready = false;
  private queue: HostToWebview[] = [];
  private readonly disposables: vscode.Disposable[] = [];
  private selected: string | null = null;
  private readonly watched = new Set<string>();
  private usageTimer: NodeJS.Timeout | undefined;
  private lastCpu: { taskId: string; seconds: number; at: number } | undefined;
  private changesInFlight = false;
  private changesAgain = false;
  /** per task: what the panel shows beyond the transcript (blocked requests, streamed output) */
  private readonly panelState = new Map<string, TaskPanelState>();
  /** the last command of the command box, sent again when the view reloads */
  private lastCommand: Extract<HostToWebview, { type: 'commandResult' }> | undefined;

  constructor(private readonly deps: PanelDeps) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.ready = false;
    view.webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.deps.extensionUri, 'dist'), vscode.Uri.joinPath(this.deps.extensionUri, 'media')] };
    view.webview.html = this.html(view.webview);
    this.disposables.push(
      view.webview.onDidReceiveMessage((raw: unknown) => void this.onMessage(raw)),
      view.onDidDispose(() => {
        this.view = undefined;
        this.ready = false;
        clearInterval(this.usageTimer);
        this.usageTimer = undefined;
      }),
    );
    clearInterval(this.usageTimer);
    this.usageTimer = setInterval(() => void this.sampleUsage(), USAGE_INTERVAL_MS);
  }

  pushState(): void {
    const vm = this.deps.vm();
    const settings = readSettings();
    this.post({
      type: 'state',
      vm: vm?.current ?? { state: 'stopped', detail: 'Open a folder to use Cowork.' },
      trusted: vscode.workspace.isTrusted,
      settingsProblem: settings.ok ? null : describeProblems(settings.problems),
      scripted: this.deps.scripted,
    });
  }

  async pushTasks(): Promise<void> {
    const manager = await this.deps.tasks();
    if (!manager) return;
    for (const info of manager.list()) {
      const task = manager.get(info.id);
      if (task) this.watch(task);
    }
    this.post({ type: 'tasks', tasks: this.summaries(manager), selected: this.selected });
  }

  private summaries(manager: TaskManager): TaskSummary[] {
    return manager.list().map((t) => ({ ...t, changes: this.deps.review(t.id)?.count ?? 0 }));
  }

  /** Shows a task (e.g. one just delegated from the palette). */
  async select(taskId: string): Promise<void> {
    const manager = await this.deps.tasks();
    const task = manager?.get(taskId);
    if (!task) return;
    this.selected = taskId;
    this.watch(task);
    this.post({ type: 'tasks', tasks: this.summaries(manager!), selected: taskId });
    const ps = this.stateOf(taskId);
    const blocked = ps.blocked();
    this.post({ type: 'transcript', taskId, events: [...task.transcript.all], vm: task.vm.current, live: ps.live(), blocked: blocked.items, blockedTotal: blocked.total });
    this.lastCpu = undefined;
    this.pushChanges();
    void this.sampleUsage();
  }

  /** Sends the selected task's changes (diffs computed by its review); coalesces bursts of refreshes. */
  private pushChanges(): void {
    if (this.changesInFlight) {
      this.changesAgain = true;
      return;
    }
    const taskId = this.selected;
    const review = taskId ? this.deps.review(taskId) : undefined;
    if (!taskId || !review) return;
    this.changesInFlight = true;
    void (async () => {
      try {
        const files = review.count ? await review.views() : [];
        this.post({ type: 'changes', taskId, files });
      } catch (err) {
        this.deps.log.warn(`[review] cannot show the changes in the panel: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.changesInFlight = false;
        if (this.changesAgain) {
          this.changesAgain = false;
          this.pushChanges();
        }
      }
    })();
  }

  private async sampleUsage(): Promise<void> {
    const taskId = this.selected;
    if (!taskId || !this.view?.visible) return;
    const task = (await this.deps.tasks())?.get(taskId);
    if (!task || task.vm.current.state !== 'ready') return;
    try {
      const u = await task.vm.usage();
      if (!u || taskId !== this.selected) return;
      const now = Date.now();
      let cpuPercent: number | undefined;
      if (u.cpuSeconds !== undefined && this.lastCpu?.taskId === taskId && now > this.lastCpu.at) cpuPercent = Math.max(0, ((u.cpuSeconds - this.lastCpu.seconds) / ((now - this.lastCpu.at) / 1000)) * 100);
      if (u.cpuSeconds !== undefined) this.lastCpu = { taskId, seconds: u.cpuSeconds, at: now };
      this.post({ type: 'vmUsage', taskId, usage: { cpuPercent, rssBytes: u.rssBytes, diskBytes: u.sessionDiskBytes } });
    } catch {
      // the VM went away between the check and the sample: the state event says so
    }
  }

  private stateOf(taskId: string): TaskPanelState {
    let ps = this.panelState.get(taskId);
    if (!ps) this.panelState.set(taskId, (ps = new TaskPanelState()));
    return ps;
  }

  private watch(task: Task): void {
    if (this.watched.has(task.info.id)) return;
    this.watched.add(task.info.id);
    const id = task.info.id;
    const ps = this.stateOf(id);
    // denials of an earlier session (before a window reload) come from the task's audit log
    ps.loadAudit(task.vm.egressLog);
    const onLive = (event: LiveEvent): void => {
      ps.onLive(event);
      if (id === this.selected) this.post({ type: 'live', taskId: id, event: liveView(event) });
    };
    task.on('live', onLive);
    const vmSub = task.vm.onStatus((vm) => id === this.selected && this.post({ type: 'taskVm', taskId: id, vm }));
    const egressSub = task.vm.onEgress((r) => {
      if (ps.onEgress(r) && id === this.selected) this.post({ type: 'blocked', taskId: id, ...ps.blocked() });
    });
    const review = this.deps.review(id);
    const changesSub = review?.onDidChangeCount(() => {
      void this.pushTasks();
      if (id === this.selected) this.pushChanges();
    });
    this.disposables.push({
      dispose: () => {
        task.off('live', onLive);
        vmSub.dispose();
        egressSub.dispose();
        changesSub?.dispose();
      },
    });
  }

  private post(msg: HostToWebview): void {
    if (!this.view || !this.ready) {
      if (msg.type === 'state' || msg.type === 'tasks') this.queue = this.queue.filter((m) => m.type !== msg.type);
      this.queue.push(msg);
      return;
    }
    void this.view.webview.postMessage(msg);
  }

  private async onMessage(raw: unknown): Promise<void> {
    const parsed = WebviewToHost.safeParse(raw);
    if (!parsed.success) {
      this.deps.log.warn(`[panel] ignored an invalid message from the webview: ${parsed.error.message}`);
      return;
    }
    const msg = parsed.data;
    switch (msg.type) {
      case 'ready':
        // a new page (first load, shown again after being hidden, reloaded): it knows nothing, so
        // everything is sent again from the host's state; what was queued is part of that
        this.ready = true;
        this.queue = [];
        this.pushState();
        if (this.lastCommand) this.post(this.lastCommand);
        await this.pushTasks();
        if (this.selected) await this.select(this.selected);
        return;
      case 'invalidMessage':
        this.deps.log.error(`[panel] the webview refused a message: ${msg.error}`);
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
      case 'selectTask':
        await this.select(msg.taskId);
        return;
      case 'stopTask':
        await vscode.commands.executeCommand(Commands.stopTask, msg.taskId);
        return;
      case 'followUp': {
        const manager = await this.deps.tasks();
        const task = manager?.get(msg.taskId);
        if (manager && task && !task.isRunning) void manager.send(task, msg.text);
        return;
      }
      case 'openDiff':
        await vscode.commands.executeCommand(Commands.openDiff, msg.taskId, msg.path);
        return;
      case 'acceptFile':
      case 'discardFile': {
        const review = this.deps.review(msg.taskId);
        // direct mode: the file is already in the workspace; "discard" puts the person's version back
        if (msg.type === 'discardFile' && review?.direct?.has(msg.path)) return void (await vscode.commands.executeCommand(Commands.revertFile, { applied: { path: msg.path }, taskId: msg.taskId }));
        const change = review?.find(msg.path);
        // the same commands (and checks, and confirmation) as the Source Control view's
        // Accept carries the hash of the version the row showed: the write is checked against it, not the newest scan
        const seen = msg.type === 'acceptFile' && msg.sha256 ? { ...change, sha256: msg.sha256 } : change;
        if (change && msg.type === 'acceptFile' && msg.fingerprint !== undefined && msg.fingerprint !== changeFingerprint(change)) {
          // the row the person clicked showed another change (a file since turned into a link, deleted or rewritten)
          void vscode.window.showWarningMessage(`Cowork: ${change.display} changed since you reviewed it — look again.`);
          review?.scheduleRefresh(0);
          return;
        }
        if (change) await vscode.commands.executeCommand(msg.type === 'acceptFile' ? Commands.acceptFile : Commands.discardFile, { change: seen, taskId: msg.taskId });
        return;
      }
      case 'acceptAll':
      case 'acceptFolder': {
        // the rows marked "will be refused" are not part of Accept All (the panel says how many and
        // why), nor are generated folders (node_modules, .venv) unless the person accepts the folder
        const review = this.deps.review(msg.taskId);
        if (!review) return;
        const refused = new Set((await review.views()).filter((v) => v.refusal && !v.applied).map((v) => v.path));
        const folder = msg.type === 'acceptFolder' ? msg.folder : undefined;
        const wanted = review.all.filter((c) => !refused.has(c.path.toString('base64')) && (folder === undefined ? generatedFolder(c.display) === undefined : generatedFolder(c.display) === folder));
        if (folder === undefined && wanted.length === review.all.length) return void (await vscode.commands.executeCommand(Commands.acceptAll, msg.taskId));
        if (wanted.length === 0) return void vscode.window.showInformationMessage(`Cowork: nothing to accept${refused.size ? `: ${refused.size} change(s) would be refused (the panel says why)` : ''}.`);
        await vscode.commands.executeCommand(Commands.acceptFile, wanted.map((change) => ({ change, taskId: msg.taskId })));
        return;
      }
      case 'discardFolder': {
        const review = this.deps.review(msg.taskId);
        const states = (review?.all ?? []).filter((c) => generatedFolder(c.display) === msg.folder).map((change) => ({ change, taskId: msg.taskId }));
        if (states.length) await vscode.commands.executeCommand(Commands.discardFile, states);
        return;
      }
      case 'discardAll':
        await vscode.commands.executeCommand(Commands.discardAll, msg.taskId);
        return;
      case 'revealChanges':
        await vscode.commands.executeCommand('workbench.view.scm');
        return;
      case 'allowDomain': {
        const task = (await this.deps.tasks())?.get(msg.taskId);
        // the page is not trusted to hide the button: the host judges the destination again
        const verdict = allowability({ host: msg.host, port: msg.port ?? 443, rule: 'default-deny' });
        if (!verdict.canAllow) return void vscode.window.showWarningMessage(`Cowork: ${msg.host} cannot be allowed: ${verdict.why}.`);
        try {
          const allowed = task?.vm.allowDomain(msg.host, msg.port);
          if (allowed) void vscode.window.showInformationMessage(`Cowork: ${allowed} is allowed for this task. The agent can retry.`);
        } catch (err) {
          void vscode.window.showWarningMessage(`Cowork: cannot allow ${msg.host}: ${err instanceof Error ? err.message : String(err)}`);
        }
        return;
      }
      case 'runCommand': {
        try {
          const r = await vscode.commands.executeCommand<{ code: number | null; signal: string | null; output: string } | undefined>(Commands.runInVm, msg.command);
          if (r) this.post((this.lastCommand = { type: 'commandResult', command: msg.command, output: r.output, exit: r.code !== null ? `exit ${r.code}` : `killed by ${r.signal}` }));
        } catch (err) {
          this.post((this.lastCommand = { type: 'commandResult', command: msg.command, output: err instanceof Error ? err.message : String(err), exit: 'error' }));
        }
        return;
      }
    }
  }

  private html(webview: vscode.Webview): string {
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.deps.extensionUri, 'dist', 'webview.js'));
    const css = webview.asWebviewUri(vscode.Uri.joinPath(this.deps.extensionUri, 'media', 'panel.css'));
    const codicons = webview.asWebviewUri(vscode.Uri.joinPath(this.deps.extensionUri, 'dist', 'codicons', 'codicon.css'));
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
<meta property="csp-nonce" content="${nonce}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${codicons.toString()}">
<link rel="stylesheet" href="${css.toString()}">
<title>Cowork</title>
</head>
<body>
<main id="app"></main>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }

  dispose(): void {
    clearInterval(this.usageTimer);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
