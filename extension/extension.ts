// activate() only wires: build the services, register them, return. Everything registered is
// owned by context.subscriptions.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { registerCommands } from './commands/registerCommands';
import { ContextKeys, LOG_CHANNEL_NAME, Views } from './ids';
import { CoworkViewProvider } from './panel/coworkViewProvider';
import { WorkspaceVm } from './session/workspaceVm';
import { channelLogger } from './workbench/logger';

export function activate(context: vscode.ExtensionContext): { workspaceVm: () => WorkspaceVm | undefined } {
  const log = vscode.window.createOutputChannel(LOG_CHANNEL_NAME, { log: true });
  context.subscriptions.push(log);

  let workspaceVm: WorkspaceVm | undefined;
  const getVm = (): WorkspaceVm | undefined => {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder || folder.uri.scheme !== 'file') return undefined;
    if (!workspaceVm) {
      workspaceVm = new WorkspaceVm({
        helperPath: path.join(context.extensionPath, 'dist', 'vm-host.js'),
        workspace: folder.uri.fsPath,
        storageDir: context.globalStorageUri.fsPath,
        log: channelLogger(log),
      });
      const sub = workspaceVm.onStatus((s) => {
        void vscode.commands.executeCommand('setContext', ContextKeys.vmState, s.state);
        panel.pushState();
      });
      context.subscriptions.push({ dispose: () => sub.dispose() });
    }
    return workspaceVm;
  };

  const panel = new CoworkViewProvider(context.extensionUri, getVm, log);
  context.subscriptions.push(
    panel,
    vscode.window.registerWebviewViewProvider(Views.panel, panel, { webviewOptions: { retainContextWhenHidden: false } }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => panel.pushState()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('cowork')) panel.pushState();
    }),
    ...registerCommands({
      context,
      log,
      vm: getVm,
      revealPanel: async () => {
        await vscode.commands.executeCommand(`${Views.panel}.focus`);
      },
    }),
    // The VM dies with the window: closing the helper's stdin stops it.
    { dispose: () => void workspaceVm?.dispose() },
  );
  log.info(`Cowork activated (trusted workspace: ${vscode.workspace.isTrusted})`);
  return { workspaceVm: () => workspaceVm };
}

export function deactivate(): void {
  // context.subscriptions disposes everything, including the VM helper.
}
