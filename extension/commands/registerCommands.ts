// Palette commands. Each one is a thin handler over the engine; the check in
// test/unit/manifest.test.ts (npm run check:commands) fails if one contributed in package.json is not registered.
import { cacheDiskBytes, cacheDiskPath, clearCacheDisk } from '../session/cacheDisk';
import { rm, stat } from 'node:fs/promises';
import * as vscode from 'vscode';
import { describeProblems } from '../config/settings';
import { registerCheckSetup } from './checkSetup';
import { Commands, SECRET_API_KEY } from '../ids';
import type { TaskManager } from '../session/taskManager';
import type { WorkspaceVm } from '../session/workspaceVm';
import { readSettings, type EffectiveSettingsReport } from '../workbench/settings';
import type { PromptImage } from '../protocol/transcript';
import { refusedModel, withMentionNote } from '../panel/promptInput';

export interface CommandDeps {
  readonly context: vscode.ExtensionContext;
  readonly log: vscode.LogOutputChannel;
  readonly vm: () => WorkspaceVm | undefined;
  readonly tasks: () => Promise<TaskManager | undefined>;
  readonly showTask: (id: string) => Promise<void>;
  readonly revealPanel: () => Promise<void>;
  /** the settings that apply, and what a workspace tried to set and was ignored */
  readonly settingsReport: () => Promise<EffectiveSettingsReport>;
}


export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const { log } = deps;
  const requireVm = (): WorkspaceVm | undefined => {
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('Cowork runs nothing in an untrusted workspace. Trust this folder (Manage Workspace Trust) to use the VM.');
      return undefined;
    }
    const vm = deps.vm();
    if (!vm) void vscode.window.showWarningMessage('Cowork needs an open folder: open one and try again.');
    return vm;
  };

  const startVm = async (): Promise<void> => {
    const vm = requireVm();
    if (!vm) return;
    const settings = readSettings();
    if (!settings.ok) {
      void vscode.window.showErrorMessage(`Cowork settings are invalid: ${describeProblems(settings.problems)}. Fix them in Settings (cowork.*).`);
      return;
    }
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Cowork VM', cancellable: false }, async (progress) => {
      let last = 0;
      const sub = vm.onStatus((s) => {
        if (s.imageProgress && s.state === 'booting') {
          const pct = Math.round(s.imageProgress.fraction * 100);
          progress.report({ message: s.imageProgress.message, increment: Math.max(0, pct - last) });
          last = pct;
        }
      });
      progress.report({ message: 'Starting the VM (the first run builds the guest image: a few minutes, ~150 MB on disk)' });
      try {
        const guest = await vm.start(settings.settings);
        void vscode.window.showInformationMessage(`Cowork VM ready in ${(guest.info.bootMs / 1000).toFixed(1)} s (${guest.info.accelerator}).${guest.info.notice ? ` ${guest.info.notice}.` : ''}`);
      } catch (err) {
        log.error(`[vm] start failed: ${String(err)}`);
        void vscode.window.showErrorMessage(`Cowork VM failed to start: ${err instanceof Error ? err.message : String(err)}`, 'Check Setup', 'Show Log').then((pick) => {
          if (pick === 'Check Setup') void vscode.commands.executeCommand(Commands.checkSetup);
          else if (pick) log.show();
        });
      } finally {
        sub.dispose();
      }
    });
  };

  const disposables = [
    ...registerCheckSetup({ context: deps.context, log }),
    vscode.commands.registerCommand(Commands.startVm, startVm),
    // Stop VM leaves no idle VM of Cowork running for this window: the smoke-test VM and the warm VM
    // (held off until a task's turn starts: WarmVm.stop). Tasks' VMs stay: each is its task's,
    // stopped by Stop Task, Delete Task or cowork.vm.idleStopMinutes, and one may be mid-turn.
    vscode.commands.registerCommand(Commands.stopVm, async () => {
      const vm = deps.vm();
      const manager = await deps.tasks().catch(() => undefined);
      await Promise.all([vm?.stop(), manager?.stopWarm('Stop VM')]);
    }),
    vscode.commands.registerCommand(Commands.showLog, () => log.show()),
    vscode.commands.registerCommand(Commands.showEgressLog, async () => {
      // each task has its own log; the workspace VM (Start VM, the panel's command box) has one too
      const manager = await deps.tasks();
      const choices: { label: string; description: string; file: string }[] = (manager?.list() ?? []).map((t) => ({ label: t.title, description: t.state, file: manager!.get(t.id)!.vm.egressLog }));
      const wsVm = deps.vm();
      if (wsVm) choices.push({ label: 'Workspace VM', description: 'Start VM and the panel\'s command box', file: wsVm.egressLog });
      const pick = choices.length <= 1 ? choices[0] : await vscode.window.showQuickPick(choices, { title: 'Egress log of which task?' });
      if (!pick) return;
      try {
        const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(pick.file));
        await vscode.window.showTextDocument(doc, { preview: true });
      } catch {
        void vscode.window.showInformationMessage('Cowork: no network request has been made from the VM yet.');
      }
    }),
    vscode.commands.registerCommand(Commands.setApiKey, async () => {
      const key = await vscode.window.showInputBox({ title: 'Anthropic API key', prompt: 'Stored in VS Code secret storage; it never enters the VM.', password: true, ignoreFocusOut: true });
      if (!key) return;
      if (!/^[\x21-\x7e]{8,}$/.test(key.trim())) {
        void vscode.window.showErrorMessage('That does not look like an API key (printable characters, no spaces). Nothing was saved.');
        return;
      }
      await deps.context.secrets.store(SECRET_API_KEY, key.trim());
      void vscode.window.showInformationMessage('Cowork: API key saved.');
    }),
    vscode.commands.registerCommand(Commands.delegateTask, async (given?: string, opts?: { model?: string; images?: readonly PromptImage[] }) => {
      if (!vscode.workspace.isTrusted) {
        void vscode.window.showWarningMessage('Cowork runs nothing in an untrusted workspace. Trust this folder (Manage Workspace Trust) to delegate tasks.');
        return undefined;
      }
      const settings = readSettings();
      if (!settings.ok) {
        void vscode.window.showErrorMessage(`Cowork settings are invalid: ${describeProblems(settings.problems)}. Fix them in Settings (cowork.*); no task was started.`);
        return undefined;
      }
      const manager = await deps.tasks();
      if (!manager) {
        void vscode.window.showWarningMessage('Cowork needs an open folder: open one and try again.');
        return undefined;
      }
      // the panel's picker offers only these; another caller of the command is held to the same list
      const refused = refusedModel(opts?.model, settings.settings);
      if (refused) {
        void vscode.window.showErrorMessage(refused);
        return undefined;
      }
      let prompt = typeof given === 'string' ? given : undefined;
      if (!prompt) {
        const editor = vscode.window.activeTextEditor;
        const rel = editor ? vscode.workspace.asRelativePath(editor.document.uri) : undefined;
        const selection = editor && !editor.selection.isEmpty ? editor.document.getText(editor.selection) : undefined;
        prompt = await vscode.window.showInputBox({ title: 'Cowork: Delegate Task', prompt: rel ? `Context offered: ${selection ? 'the selection in ' : ''}${rel}` : 'Describe the task', ignoreFocusOut: true });
        if (!prompt) return undefined;
        if (rel && editor && editor.document.uri.scheme === 'file') {
          prompt += selection ? `\n\nSelected in /workspace/${rel}:\n\`\`\`\n${selection.slice(0, 20_000)}\n\`\`\`` : `\n\n(The active file is /workspace/${rel}.)`;
        }
      }
      const { task, done } = await manager.create(withMentionNote(prompt), { model: opts?.model, images: opts?.images });
      await deps.revealPanel();
      await deps.showTask(task.info.id);
      void done.then((outcome) => log.info(`[agent] task ${task.info.id} ended its turn: ${outcome}`));
      return task.info.id;
    }),
    vscode.commands.registerCommand(Commands.stopTask, async (taskId?: string) => {
      const manager = await deps.tasks();
      if (!manager) return;
      const running = manager.list().filter((t) => manager.get(t.id)?.isRunning || manager.get(t.id)?.isQueued);
      let id = typeof taskId === 'string' ? taskId : undefined;
      if (!id) {
        if (running.length === 0) return void vscode.window.showInformationMessage('Cowork: no task is running.');
        id = running.length === 1 ? running[0]!.id : (await vscode.window.showQuickPick(running.map((t) => ({ label: t.title, id: t.id })), { title: 'Stop which task?' }))?.id;
      }
      if (id) manager.get(id)?.stop();
    }),
    vscode.commands.registerCommand(Commands.cleanUp, async () => {
      // Only this workspace's disks: its tasks' (in its own storage) and its own workspace VM's.
      // Another window's VMs and disks are never touched.
      const manager = await deps.tasks();
      if (!manager) return void vscode.window.showWarningMessage('Cowork needs an open, trusted folder to clean up.');
      let freed = 0;
      let removed = 0;
      const orphans = await manager.removeOrphanDisks();
      freed += orphans.freedBytes;
      removed += orphans.removed.length;
      const vm = deps.vm();
      if (vm && (vm.current.state === 'stopped' || vm.current.state === 'failed')) {
        // the workspace VM's own disk only (the global folder holds other windows' disks too)
        const st = await stat(vm.sessionDisk).catch(() => undefined);
        if (st) {
          await rm(vm.sessionDisk, { force: true });
          freed += st.blocks * 512;
          removed++;
        }
      }
      const cleared = await offerToClearPackageCache(deps.context, manager);
      freed += cleared;
      if (cleared) removed++;
      const usage = await manager.diskUsage();
      const finished = manager.list().filter((t) => t.state !== 'running' && t.state !== 'booting' && t.state !== 'queued' && !manager.get(t.id)?.isRunning);
      if (finished.length) {
        const bytes = finished.reduce((n, t) => n + (usage.get(t.id) ?? 0), 0);
        const pick = await vscode.window.showQuickPick(
          finished.map((t) => ({ label: t.title, description: `${t.state}, ${mib(usage.get(t.id) ?? 0)} on disk`, picked: false, id: t.id })),
          { title: `Also delete finished tasks with their disks (${mib(bytes)} in all)? Their changes not yet accepted are lost.`, canPickMany: true },
        );
        for (const p of pick ?? []) {
          const r = await manager.delete(p.id).catch((err: unknown) => (void vscode.window.showErrorMessage(`Cowork: cannot delete "${p.label}": ${String(err)}`), { freedBytes: 0 }));
          freed += r.freedBytes;
          removed++;
        }
      }
      void vscode.window.showInformationMessage(`Cowork: cleaned up ${removed} item(s), freed ${mib(freed)}.`);
    }),
    vscode.commands.registerCommand(Commands.deleteTask, async (taskId?: string) => {
      const manager = await deps.tasks();
      if (!manager) return;
      const usage = await manager.diskUsage();
      let id = typeof taskId === 'string' ? taskId : undefined;
      if (!id) {
        const tasks = manager.list();
        if (!tasks.length) return void vscode.window.showInformationMessage('Cowork: there are no tasks.');
        id = (await vscode.window.showQuickPick(tasks.map((t) => ({ label: t.title, description: `${t.state}, ${mib(usage.get(t.id) ?? 0)} on disk`, id: t.id })), { title: 'Delete which task (with its VM disk and pending changes)?' }))?.id;
        if (!id) return;
        const sure = await vscode.window.showWarningMessage('Delete this task? Its changes that are not accepted yet are lost.', { modal: true }, 'Delete');
        if (sure !== 'Delete') return;
      }
      try {
        const { freedBytes } = await manager.delete(id);
        void vscode.window.showInformationMessage(`Cowork: task deleted, freed ${mib(freedBytes)}.`);
      } catch (err) {
        void vscode.window.showErrorMessage(`Cowork: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
    vscode.commands.registerCommand(Commands.restartTaskVm, async (taskId?: string) => {
      const manager = await deps.tasks();
      if (!manager) return;
      let id = typeof taskId === 'string' ? taskId : undefined;
      if (!id) {
        const lost = manager.list().filter((t) => manager.get(t.id)?.vm.lost);
        const candidates = lost.length ? lost : manager.list().filter((t) => !manager.get(t.id)?.isRunning);
        id = candidates.length === 1 ? candidates[0]!.id : (await vscode.window.showQuickPick(candidates.map((t) => ({ label: t.title, description: t.state, id: t.id })), { title: 'Restart the VM of which task?' }))?.id;
      }
      const task = id ? manager.get(id) : undefined;
      if (!task) return;
      try {
        await task.restartVm();
        void vscode.window.showInformationMessage(`Cowork: the VM of "${task.info.title}" was restarted; its changes are intact. The agent is told with your next message.`);
      } catch (err) {
        void vscode.window.showErrorMessage(`Cowork: cannot restart the VM: ${err instanceof Error ? err.message : String(err)}`, 'Show Log').then((p) => p && log.show());
      }
    }),
    vscode.commands.registerCommand(Commands.effectiveSettings, () => deps.settingsReport()),
    vscode.commands.registerCommand(Commands.runInVm, async (command?: string) => {
      const vm = requireVm();
      if (!vm) return undefined;
      const settings = readSettings();
      if (!settings.ok) throw new Error(describeProblems(settings.problems));
      const cmd = command ?? (await vscode.window.showInputBox({ prompt: 'Command to run in the Cowork VM' }));
      if (!cmd) return undefined;
      await vm.start(settings.settings);
      const sandbox = vm.sandbox;
      if (!sandbox) throw new Error('The VM stopped before the command could run.');
      const r = await sandbox.run(cmd, { timeoutMs: 60_000 });
      const output = r.stdout.toString() + r.stderr.toString();
      log.info(`[vm] $ ${cmd} → ${r.code ?? r.signal}\n${output}`);
      return { code: r.code, signal: r.signal, output };
    }),
  ];
  return disposables;
}

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(2)} GiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
}

/**
 * Clean Up's question about this workspace's package cache (npm, pip; session/cacheDisk.ts): its
 * size, and removing it when the person says so and no task VM of the workspace runs (the next task
 * starts with an empty cache). Returns the bytes freed.
 */
async function offerToClearPackageCache(context: vscode.ExtensionContext, manager: TaskManager): Promise<number> {
  const ws = vscode.workspace.workspaceFolders?.[0];
  if (ws?.uri.scheme !== 'file') return 0;
  const file = cacheDiskPath(context.globalStorageUri.fsPath, ws.uri.fsPath);
  const bytes = await cacheDiskBytes(file);
  if (!bytes) return 0;
  const pick = await vscode.window.showInformationMessage(`Cowork: this workspace's package cache (npm, pip) takes ${mib(bytes)}. Clear it? Later tasks download their packages again.`, { modal: true }, 'Clear Package Cache');
  if (pick !== 'Clear Package Cache') return 0;
  const busy = manager.list().some((t) => {
    const state = manager.get(t.id)?.vm.current.state;
    return state !== undefined && state !== 'stopped' && state !== 'failed';
  });
  if (busy) {
    void vscode.window.showWarningMessage('Cowork: a task of this workspace has its VM running; stop it, then clear the package cache.');
    return 0;
  }
  return clearCacheDisk(file);
}
