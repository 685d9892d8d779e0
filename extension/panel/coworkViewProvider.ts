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
import { editorMention, findMentionable, offeredModels, refusedModel, withMentionNote } from './promptInput';
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

/** The editor-tab task view's type (its serializer restores it after a reload). */
export const TASK_EDITOR_VIEW_TYPE = 'cowork.task';

/**
 * One page showing Cowork: the side panel, or a task in an editor tab. Each has its own selected
 * task; both speak the same protocol and run the same bundle. A page that (re)loads says `ready`
 * and gets everything again from the host.
 */
interface Bridge {
  readonly webview: vscode.Webview;
  readonly mode: 'side' | 'editor';
  ready: boolean;
  queue: HostToWebview[];
  selected: string | null;
  visible(): boolean;
  /** the editor tab's panel (its title follows the task) */
  readonly panel?: vscode.WebviewPanel;
}

export class CoworkViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private side: Bridge | undefined;
  private readonly bridges = new Set<Bridge>();
  /** the side panel's task, also while its page does not exist (a task delegated from the palette) */
  private sideSelected: string | null = null;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly watched = new Set<string>();
  private usageTimer: NodeJS.Timeout | undefined;
  private readonly lastCpu = new Map<string, { seconds: number; at: number }>();
  private readonly changesInFlight = new Set<string>();
  private readonly changesAgain = new Set<string>();
  /** per task: what the panel shows beyond the transcript (blocked requests, streamed output) */
  private readonly panelState = new Map<string, TaskPanelState>();
  /** the last command of the command box, sent again when the view reloads */
  private lastCommand: Extract<HostToWebview, { type: 'commandResult' }> | undefined;

  constructor(private readonly deps: PanelDeps) {
    this.usageTimer = setInterval(() => void this.sampleUsage(), USAGE_INTERVAL_MS);
    this.disposables.push(vscode.commands.registerCommand(Commands.openTaskInEditor, (taskId?: unknown) => this.openInEditor(typeof taskId === 'string' ? taskId : undefined)));
  }

  private options(): vscode.WebviewOptions {
    return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.deps.extensionUri, 'dist'), vscode.Uri.joinPath(this.deps.extensionUri, 'media')] };
  }

  private attach(bridge: Bridge, onDispose: (l: () => void) => vscode.Disposable): void {
    this.bridges.add(bridge);
    bridge.webview.options = this.options();
    bridge.webview.html = this.html(bridge.webview, bridge.mode);
    const subs = [
      bridge.webview.onDidReceiveMessage((raw: unknown) => void this.onMessage(bridge, raw)),
      onDispose(() => {
        this.bridges.delete(bridge);
        if (this.side === bridge) this.side = undefined;
        for (const d of subs) d.dispose();
      }),
    ];
    this.disposables.push(...subs);
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    if (this.side) this.bridges.delete(this.side);
    const bridge: Bridge = { webview: view.webview, mode: 'side', ready: false, queue: [], selected: this.sideSelected, visible: () => view.visible };
    this.side = bridge;
    this.attach(bridge, (l) => view.onDidDispose(l));
  }

  /** "Open Task in Editor": the same task UI in an editor tab, wide (transcript and changes side by side). */
  async openInEditor(taskId?: string): Promise<void> {
    const manager = await this.deps.tasks();
    let id = taskId ?? this.sideSelected ?? undefined;
    if (!id && manager) {
      const pick = await vscode.window.showQuickPick(manager.list().map((t) => ({ label: t.title, description: t.state, id: t.id })), { placeHolder: 'Which task?' });
      id = pick?.id;
    }
    const task = id ? manager?.get(id) : undefined;
    if (!task) return void vscode.window.showInformationMessage('Cowork: no task to open.');
    const open = [...this.bridges].find((b) => b.mode === 'editor' && b.selected === task.info.id);
    if (open?.panel) return open.panel.reveal();
    const panel = vscode.window.createWebviewPanel(TASK_EDITOR_VIEW_TYPE, `Cowork: ${task.info.title}`, vscode.ViewColumn.Active, { ...this.options(), retainContextWhenHidden: false });
    this.restoreEditor(panel, { selected: task.info.id });
  }

  /** An editor tab of a task: a new one, or one VS Code restores after a reload (its serializer). */
  restoreEditor(panel: vscode.WebviewPanel, state: unknown): void {
    const selected = state && typeof state === 'object' && typeof (state as { selected?: unknown }).selected === 'string' ? (state as { selected: string }).selected : null;
    panel.iconPath = vscode.Uri.joinPath(this.deps.extensionUri, 'media', 'cowork.svg');
    const bridge: Bridge = { webview: panel.webview, mode: 'editor', ready: false, queue: [], selected, visible: () => panel.visible, panel };
    this.attach(bridge, (l) => panel.onDidDispose(l));
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
      models: settings.ok ? offeredModels(settings.settings) : [],
    });
  }

  async pushTasks(): Promise<void> {
    const manager = await this.deps.tasks();
    if (!manager) return;
    for (const info of manager.list()) {
      const task = manager.get(info.id);
      if (task) this.watch(task);
    }
    const tasks = this.summaries(manager);
    const history = this.history(manager);
    for (const b of this.bridges) this.postTo(b, { type: 'tasks', tasks, selected: b.selected, history });
  }

  /** What the person typed before (prompts and follow-ups, newest first), from the tasks' transcripts. */
  private history(manager: TaskManager): string[] {
    const seen = new Set<string>();
    const all: { at: number; text: string }[] = [];
    for (const info of manager.list()) {
      for (const e of manager.get(info.id)?.transcript.all ?? []) if (e.type === 'user' && e.text.length <= 100_000) all.push({ at: e.at, text: e.text });
    }
    return all
      .sort((a, b) => b.at - a.at)
      .map((e) => e.text)
      .filter((t) => !seen.has(t) && seen.add(t))
      .slice(0, 100);
  }

  private summaries(manager: TaskManager): TaskSummary[] {
    return manager.list().map((t) => ({ ...t, changes: this.deps.review(t.id)?.count ?? 0 }));
  }

  /** Shows a task in the side panel (e.g. one just delegated from the palette). */
  async select(taskId: string): Promise<void> {
    this.sideSelected = taskId;
    if (this.side) await this.show(this.side, taskId);
  }

  /** Sends a page everything it shows for a task, from the host's state. */
  private async show(bridge: Bridge, taskId: string): Promise<void> {
    const manager = await this.deps.tasks();
    const task = manager?.get(taskId);
    if (!task) return;
    bridge.selected = taskId;
    if (bridge === this.side) this.sideSelected = taskId;
    this.watch(task);
    if (bridge.panel) bridge.panel.title = `Cowork: ${task.info.title}`;
    this.postTo(bridge, { type: 'tasks', tasks: this.summaries(manager!), selected: taskId, history: this.history(manager!) });
    const ps = this.stateOf(taskId);
    const blocked = ps.blocked();
    this.postTo(bridge, { type: 'transcript', taskId, events: [...task.transcript.all], vm: task.vm.current, live: ps.live(), blocked: blocked.items, blockedTotal: blocked.total });
    this.lastCpu.delete(taskId);
    this.pushChanges(taskId);
    void this.sampleUsage();
  }

  /** Sends a task's changes (diffs computed by its review) to the pages showing it; coalesces bursts of refreshes. */
  private pushChanges(taskId: string): void {
    if (this.changesInFlight.has(taskId)) {
      this.changesAgain.add(taskId);
      return;
    }
    const review = this.deps.review(taskId);
    if (!review) return;
    this.changesInFlight.add(taskId);
    void (async () => {
      try {
        const files = review.count ? await review.views() : [];
        this.post({ type: 'changes', taskId, files });
      } catch (err) {
        this.deps.log.warn(`[review] cannot show the changes in the panel: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.changesInFlight.delete(taskId);
        if (this.changesAgain.delete(taskId)) this.pushChanges(taskId);
      }
    })();
  }

  /** The tasks some visible page shows. */
  private shown(): Set<string> {
    return new Set([...this.bridges].filter((b) => b.visible() && b.selected).map((b) => b.selected!));
  }

  private async sampleUsage(): Promise<void> {
    for (const taskId of this.shown()) {
      const manager = await this.deps.tasks();
      const task = manager?.get(taskId);
      if (!task || task.vm.current.state !== 'ready') continue;
      try {
        const u = await task.vm.usage();
        if (!u) continue;
        const now = Date.now();
        const last = this.lastCpu.get(taskId);
        let cpuPercent: number | undefined;
        if (u.cpuSeconds !== undefined && last && now > last.at) cpuPercent = Math.max(0, ((u.cpuSeconds - last.seconds) / ((now - last.at) / 1000)) * 100);
        if (u.cpuSeconds !== undefined) this.lastCpu.set(taskId, { seconds: u.cpuSeconds, at: now });
        // the warm VM holds memory for the next task: counted next to this task's
        const warmRssBytes = await manager?.warm?.rssBytes().catch(() => undefined);
        this.post({ type: 'vmUsage', taskId, usage: { cpuPercent, rssBytes: u.rssBytes, diskBytes: u.sessionDiskBytes, ...(warmRssBytes !== undefined ? { warmRssBytes } : {}) } });
      } catch {
        // the VM went away between the check and the sample: the state event says so
      }
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
      this.post({ type: 'live', taskId: id, event: liveView(event) });
    };
    task.on('live', onLive);
    const vmSub = task.vm.onStatus((vm) => this.post({ type: 'taskVm', taskId: id, vm }));
    const egressSub = task.vm.onEgress((r) => {
      if (ps.onEgress(r)) this.post({ type: 'blocked', taskId: id, ...ps.blocked() });
    });
    const review = this.deps.review(id);
    const changesSub = review?.onDidChangeCount(() => {
      void this.pushTasks();
      if ([...this.bridges].some((b) => b.selected === id)) this.pushChanges(id);
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

  /** A message about a task goes to the pages showing that task; the others go to every page. */
  private post(msg: HostToWebview): void {
    const taskId = 'taskId' in msg ? msg.taskId : undefined;
    for (const b of this.bridges) if (taskId === undefined || b.selected === taskId) this.postTo(b, msg);
  }

  private postTo(b: Bridge, msg: HostToWebview): void {
    if (!b.ready) {
      if (msg.type === 'state' || msg.type === 'tasks') b.queue = b.queue.filter((m) => m.type !== msg.type);
      b.queue.push(msg);
      if (b.queue.length > 1000) b.queue.splice(0, b.queue.length - 1000); // `ready` sends everything again anyway
      return;
    }
    void b.webview.postMessage(msg);
  }

  private async onMessage(bridge: Bridge, raw: unknown): Promise<void> {
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
        bridge.ready = true;
        bridge.queue = [];
        this.pushState();
        if (this.lastCommand) this.postTo(bridge, this.lastCommand);
        await this.pushTasks();
        if (bridge.selected) await this.show(bridge, bridge.selected);
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
      case 'delegate': {
        const settings = readSettings();
        const refused = settings.ok ? refusedModel(msg.model, settings.settings) : undefined;
        if (refused) return void this.postTo(bridge, { type: 'notice', message: refused });
        await vscode.commands.executeCommand(Commands.delegateTask, msg.prompt, { model: msg.model, images: msg.images });
        return;
      }
      case 'findFiles':
        this.postTo(bridge, { type: 'fileMatches', requestId: msg.requestId, paths: await findMentionable(msg.query).catch(() => []) });
        return;
      case 'attachEditor': {
        const m = editorMention();
        this.postTo(bridge, 'text' in m ? { type: 'insertPrompt', text: m.text } : { type: 'notice', message: m.notice });
        return;
      }
      case 'selectTask':
        await this.show(bridge, msg.taskId);
        return;
      case 'openInEditor':
        await this.openInEditor(msg.taskId);
        return;
      case 'stopTask':
        await vscode.commands.executeCommand(Commands.stopTask, msg.taskId);
        return;
      case 'followUp': {
        const manager = await this.deps.tasks();
        const task = manager?.get(msg.taskId);
        if (manager && task && !task.isRunning) void manager.send(task, withMentionNote(msg.text), msg.images);
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

  private html(webview: vscode.Webview, mode: Bridge['mode']): string {
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
<body data-mode="${mode}">
<main id="app"></main>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }

  dispose(): void {
    clearInterval(this.usageTimer);
    this.bridges.clear();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
