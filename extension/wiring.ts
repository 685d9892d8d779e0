// The engine's wiring: builds the services, registers the commands (replacing extension.ts's
// stand-ins), the review and the panel's provider, and returns what extension.ts hands out.
// extension.ts loads this file (dist/wiring.js) on first use, not at activation. Everything
// registered is owned by context.subscriptions.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { registerCommands } from './commands/registerCommands';
import { Commands, ContextKeys, LOG_CHANNEL_NAME, SECRET_API_KEY, Views } from './ids';
import { CoworkViewProvider } from './panel/coworkViewProvider';
import { registerReview, Reviews } from './review/registerReview';
import type { ReviewController } from './review/reviewController';
import { shutdownWithin } from './session/shutdown';
import { TaskManager } from './session/taskManager';
import { VmHelper } from './session/vmHelper';
import { WarmVm } from './session/warmVm';
import type { Settings } from './config/settings';
import { WorkspaceVm } from './session/workspaceVm';
import { channelLogger } from './workbench/logger';
import type { StatusBar } from './workbench/statusBar';
import { trackVmProgress } from './workbench/vmProgress';
import { workspaceGuestLayer } from './workbench/guestConsentDialog';
import { cacheDiskPath } from './session/cacheDisk';
import type { StateProblem } from './state/stateFiles';
import { readSettings, WorkspaceSettingsGuard } from './workbench/settings';

export interface CoworkApi {
  readonly workspaceVm: () => WorkspaceVm | undefined;
  readonly tasks: () => Promise<TaskManager | undefined>;
  /** the review (SourceControl) of a task, for tests and other extensions */
  readonly review: (taskId: string) => ReviewController | undefined;
}

export interface Cowork {
  readonly api: CoworkApi;
  readonly panel: vscode.WebviewViewProvider;
  readonly changesOf: (taskId: string) => number;
  readonly log: vscode.LogOutputChannel;
  /** deactivate: a bounded graceful shutdown (turns aborted, guests synced, VMs stopped) */
  readonly shutdown: () => Promise<void>;
}

/** How long deactivate waits for the guests to sync and the VMs to stop before the helper is closed anyway. */
export const SHUTDOWN_MS = 5_000;

export function wire(context: vscode.ExtensionContext, status: StatusBar): Cowork {
  const log = vscode.window.createOutputChannel(LOG_CHANNEL_NAME, { log: true });
  context.subscriptions.push(log);
  const logger = channelLogger(log);
  // A state file that was unreadable (moved aside) or could not be written: logged, and shown once per file.
  const reported = new Set<string>();
  const reportState = (p: StateProblem): void => {
    log.warn(`[state] ${p.message}`);
    if (reported.has(p.file)) return;
    reported.add(p.file);
    void vscode.window.showWarningMessage(`Cowork: ${p.message}.`, 'Show Log').then((pick) => pick && log.show());
  };
  // logs and tells the person once when a workspace tries to set what only user settings may set
  const settingsGuard = new WorkspaceSettingsGuard(log);
  context.subscriptions.push(settingsGuard);
  // One vm-host helper owns every VM of this window; closing it (dispose) stops them all.
  const helper = new VmHelper({ helperPath: path.join(context.extensionPath, 'dist', 'vm-host.js'), log: logger });
  const folder = (): string | undefined => {
    const f = vscode.workspace.workspaceFolders?.[0];
    return f && f.uri.scheme === 'file' ? f.uri.fsPath : undefined;
  };

  let workspaceVm: WorkspaceVm | undefined;
  const getVm = (): WorkspaceVm | undefined => {
    const ws = folder();
    if (!ws) return undefined;
    if (!workspaceVm) {
      workspaceVm = new WorkspaceVm({ helper, workspace: ws, storageDir: context.globalStorageUri.fsPath, log: logger });
      const sub = workspaceVm.onStatus((s) => {
        void vscode.commands.executeCommand('setContext', ContextKeys.vmState, s.state);
        panel.pushState();
      });
      const vm = workspaceVm;
      context.subscriptions.push({ dispose: () => sub.dispose() }, trackVmProgress(vm, 'starting the workspace VM', () => void vm.stop(), log));
    }
    return workspaceVm;
  };

  let manager: Promise<TaskManager | undefined> | undefined;
  const getTasks = (): Promise<TaskManager | undefined> => {
    const ws = folder();
    if (!ws || !vscode.workspace.isTrusted) return Promise.resolve(undefined);
    // Tasks belong to this workspace: keep them in its own storage.
    const storageDir = (context.storageUri ?? context.globalStorageUri).fsPath;
    const cacheDisk = cacheDiskPath(context.globalStorageUri.fsPath, ws);
    const settings = (): Settings => {
      const s = readSettings();
      if (!s.ok) throw new Error(`Cowork settings are invalid: ${s.problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`);
      return s.settings;
    };
    manager ??= TaskManager.load({
      helper,
      workspace: ws,
      storageDir,
      log: logger,
      report: reportState,
      apiKey: async () => (await context.secrets.get(SECRET_API_KEY)) ?? process.env.ANTHROPIC_API_KEY,
      // the workspace's guest setup (asked once per content) and its package cache (never shared)
      guestLayer: workspaceGuestLayer(context, ws, logger),
      cacheDisk,
      settings,
      // the next task's VM, booted ahead (cowork.vm.warm); the manager decides when and stops it
      warm: new WarmVm({ helper, workspace: ws, storageDir, log: logger, settings, cacheDisk }),
    }).then((m) => {
      const tracked = new Set<string>();
      const adopt = (): void => {
        for (const t of m.list()) {
          const task = m.get(t.id);
          if (!task) continue;
          const review = reviews.controllerFor(task);
          if (tracked.has(t.id)) continue;
          tracked.add(t.id);
          if (review) context.subscriptions.push(review.onDidChangeCount(() => status.update(m)));
          const lost = task.vm.onLost((reason) => {
            void vscode.window.showWarningMessage(`Cowork: the VM of "${t.title}" stopped unexpectedly (${reason}). Its changes are kept on its session disk.`, 'Restart').then((pick) => {
              if (pick) void vscode.commands.executeCommand(Commands.restartTaskVm, t.id);
            });
          });
          context.subscriptions.push({ dispose: () => lost.dispose() });
          // Cancel in the boot notification stops the task (and the VM it was starting)
          context.subscriptions.push(trackVmProgress(task.vm, `starting the VM for "${t.title}"`, () => void vscode.commands.executeCommand(Commands.stopTask, t.id), log));
        }
      };
      adopt();
      status.update(m);
      const updateDisk = (): void => void m.diskUsage().then((u) => status.update(m, u), () => undefined);
      updateDisk();
      m.on('refused', (_id, message) => void vscode.window.showWarningMessage(`Cowork: ${message}`));
      m.on('changed', () => {
        adopt();
        status.update(m);
        updateDisk();
        void panel.pushTasks();
      });
      context.subscriptions.push({ dispose: () => void m.dispose() });
      return m;
    });
    return manager;
  };

  const reviewDeps = { log, showTask: (id: string): Promise<void> => panel.select(id) };
  const reviews = new Reviews(reviewDeps);
  context.subscriptions.push(reviews, ...registerReview(reviewDeps, reviews));
  const panel = new CoworkViewProvider({ extensionUri: context.extensionUri, vm: getVm, tasks: getTasks, log, scripted: process.env.COWORK_SCRIPTED_DEMO === '1', review: (id): ReviewController | undefined => reviews.get(id) });
  context.subscriptions.push(
    panel,
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      panel.pushState();
      void panel.pushTasks();
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('cowork')) panel.pushState();
      if (e.affectsConfiguration('cowork.vm')) void manager?.then((m) => m?.settingsChanged(), () => undefined);
    }),
    ...registerCommands({
      context,
      log,
      vm: getVm,
      tasks: getTasks,
      showTask: (id) => panel.select(id),
      settingsReport: () => settingsGuard.report(),
      revealPanel: async () => {
        await vscode.commands.executeCommand(`${Views.panel}.focus`);
      },
    }),
    // The VMs die with the window: closing the helper's stdin stops them.
    { dispose: () => void (workspaceVm?.dispose() ?? Promise.resolve()).then(() => helper.dispose()) },
  );
  const shutdown = async (): Promise<void> => {
    const { inTime, failures } = await shutdownWithin(SHUTDOWN_MS, [async () => (await manager?.catch(() => undefined))?.shutdown(), async () => workspaceVm?.dispose()]);
    for (const f of failures) log.warn(`[vm] shutdown: ${f}`);
    if (!inTime) log.warn(`[vm] the VMs did not stop within ${SHUTDOWN_MS} ms; closing the helper, which stops them`);
    // closing the helper's stdin stops whatever is left (and its watchdog backs that up)
    await Promise.race([helper.dispose(), new Promise((r) => setTimeout(r, 1_000))]);
  };
  return { api: { workspaceVm: () => workspaceVm, tasks: getTasks, review: (id) => reviews.get(id) }, panel, changesOf: (id) => reviews.get(id)?.count ?? 0, log, shutdown };
}
