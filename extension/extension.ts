// Activation: only what must exist from the start — a stand-in for every command, the panel's view
// provider and the status bar item. The engine (extension/wiring.ts, bundled as dist/wiring.js with
// zod, the review, the panel, the session code) is loaded the first time any of them is used:
// loading it is most of the start-up cost (docs/benchmarks.md), and a window where Cowork is not
// used never pays it. A stand-in command loads the engine, which registers the real command, and
// then runs it with the same arguments.
import * as vscode from 'vscode';
import { Commands, Views } from './ids';
import { createStatusBar } from './workbench/statusBar';
import type { Cowork, CoworkApi, wire } from './wiring';
import type { CoworkViewProvider } from './panel/coworkViewProvider';

/** The editor-tab task view's type (extension/panel/coworkViewProvider.ts TASK_EDITOR_VIEW_TYPE; not imported: that module is the engine's). */
const TASK_EDITOR_VIEW_TYPE = 'cowork.task';

export type { CoworkApi } from './wiring';

export function activate(context: vscode.ExtensionContext): CoworkApi {
  let cowork: Cowork | undefined;
  const standIns: vscode.Disposable[] = [];
  const status = createStatusBar(`${Views.panel}.focus`, (id) => cowork?.changesOf(id) ?? 0);
  context.subscriptions.push(status.item);

  const load = (): Cowork => {
    if (cowork) return cowork;
    const started = performance.now();
    for (const d of standIns.splice(0)) d.dispose();
    // a separate file, kept out of extension.js by esbuild.mjs (see there)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const wiring = require('./wiring.js') as { wire: typeof wire };
    cowork = wiring.wire(context, status);
    shutdownHook = cowork.shutdown;
    // npm run bench reads this line
    cowork.log.info(`Cowork's engine loaded in ${(performance.now() - started).toFixed(1)} ms (trusted workspace: ${vscode.workspace.isTrusted})`);
    return cowork;
  };

  for (const id of Object.values(Commands)) {
    standIns.push(
      vscode.commands.registerCommand(id, (...args: unknown[]): Thenable<unknown> => {
        load();
        return vscode.commands.executeCommand<unknown>(id, ...args);
      }),
    );
  }
  context.subscriptions.push(
    {
      dispose: () => {
        for (const d of standIns.splice(0)) d.dispose();
      },
    },
    vscode.window.registerWebviewViewProvider(Views.panel, { resolveWebviewView: (view, ctx, token) => load().panel.resolveWebviewView(view, ctx, token) }, { webviewOptions: { retainContextWhenHidden: false } }),
    // a task's editor tab (Open Task in Editor) comes back after a reload
    vscode.window.registerWebviewPanelSerializer(TASK_EDITOR_VIEW_TYPE, { deserializeWebviewPanel: (panel, state) => Promise.resolve((load().panel as CoworkViewProvider).restoreEditor(panel, state)) }),
  );
  return {
    workspaceVm: () => load().api.workspaceVm(),
    tasks: () => load().api.tasks(),
    review: (id) => load().api.review(id),
  };
}

export function deactivate(): Promise<void> | undefined {
  // A bounded graceful shutdown (wiring's SHUTDOWN_MS): turns aborted, guests synced, VMs stopped.
  // context.subscriptions then disposes the rest, including the VM helper (and so any VM left).
  return shutdownHook?.();
}

let shutdownHook: (() => Promise<void>) | undefined;
