// Palette commands. Each one is a thin handler over the engine; the check in
// scripts/check-commands.mjs fails the build if one contributed in package.json is not registered.
import * as vscode from 'vscode';
import { describeProblems } from '../config/settings';
import { Commands, SECRET_API_KEY } from '../ids';
import type { TaskManager } from '../session/taskManager';
import type { WorkspaceVm } from '../session/workspaceVm';
import { readSettings, type EffectiveSettingsReport } from '../workbench/settings';

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
        void vscode.window.showInformationMessage(`Cowork VM ready in ${(guest.info.bootMs / 1000).toFixed(1)} s (${guest.info.accelerator}).`);
      } catch (err) {
        log.error(`[vm] start failed: ${String(err)}`);
        void vscode.window.showErrorMessage(`Cowork VM failed to start: ${err instanceof Error ? err.message : String(err)}`, 'Show Log').then((pick) => {
          if (pick) log.show();
        });
      } finally {
        sub.dispose();
      }
    });
  };

  const disposables = [
    vscode.commands.registerCommand(Commands.startVm, startVm),
    vscode.commands.registerCommand(Commands.stopVm, async () => {
      const vm = deps.vm();
      if (vm) await vm.stop();
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
    vscode.commands.registerCommand(Commands.delegateTask, async (given?: string) => {
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
      const { task, done } = await manager.create(prompt);
      await deps.revealPanel();
      await deps.showTask(task.info.id);
      void done.then((outcome) => log.info(`[agent] task ${task.info.id} ended its turn: ${outcome}`));
      return task.info.id;
    }),
    vscode.commands.registerCommand(Commands.stopTask, async (taskId?: string) => {
      const manager = await deps.tasks();
      if (!manager) return;
      const running = manager.list().filter((t) => manager.get(t.id)?.isRunning);
      let id = typeof taskId === 'string' ? taskId : undefined;
      if (!id) {
        if (running.length === 0) return void vscode.window.showInformationMessage('Cowork: no task is running.');
        id = running.length === 1 ? running[0]!.id : (await vscode.window.showQuickPick(running.map((t) => ({ label: t.title, id: t.id })), { title: 'Stop which task?' }))?.id;
      }
      if (id) manager.get(id)?.stop();
    }),
    vscode.commands.registerCommand(Commands.cleanUp, async () => {
      const vm = requireVm();
      if (!vm) return;
      const keep = vm.current.state === 'stopped' || vm.current.state === 'failed' ? [] : [`${vm.vmId}.qcow2`];
      const { removed, freedBytes } = await vm.cleanUp(keep);
      void vscode.window.showInformationMessage(`Cowork: removed ${removed.length} session disk(s), freed ${(freedBytes / 1048576).toFixed(1)} MiB.`);
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
