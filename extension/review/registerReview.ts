// Wires the review into the workbench: a ReviewController (SourceControl) per task, the read-only
// content providers for the diff editor, and the accept / discard commands.
import * as vscode from 'vscode';
import type { Change } from '../changes/changeSet';
import { Commands } from '../ids';
import type { Task } from '../session/task';
import { BEFORE_SCHEME, type AppliedState } from './appliedGroup';
import { displayName } from '../changes/names';
import { EMPTY_SCHEME, HOST_SCHEME, PROPOSED_SCHEME, ReviewController, type ChangeState } from './reviewController';

export interface ReviewDeps {
  readonly log: vscode.LogOutputChannel;
  readonly showTask: (id: string) => Promise<void>;
}

export class Reviews implements vscode.Disposable {
  private readonly controllers = new Map<string, ReviewController>();

  constructor(private readonly deps: ReviewDeps) {}

  controllerFor(task: Task): ReviewController | undefined {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) return undefined;
    let c = this.controllers.get(task.info.id);
    if (!c) {
      c = new ReviewController(task, folder.uri, this.deps.log);
      this.controllers.set(task.info.id, c);
      // the end of every turn refreshes the change set (tool calls refresh it as they go)
      task.on('state', (s) => (s === 'idle' || s === 'stopped' || s === 'failed') && c!.scheduleRefresh(0));
    }
    return c;
  }

  get(taskId: string): ReviewController | undefined {
    return this.controllers.get(taskId);
  }

  async pick(title: string): Promise<ReviewController | undefined> {
    const withChanges = [...this.controllers.values()].filter((c) => c.count > 0);
    if (withChanges.length <= 1) return withChanges[0];
    const pick = await vscode.window.showQuickPick(withChanges.map((c) => ({ label: c.task.info.title, description: `${c.count} change(s)`, c })), { title });
    return pick?.c;
  }

  dispose(): void {
    for (const c of this.controllers.values()) c.dispose();
    this.controllers.clear();
  }
}

function changesOf(args: unknown[]): { controllerId?: string; changes: Change[] } {
  const states = args.flat().filter((a): a is ChangeState => typeof a === 'object' && a !== null && 'change' in a && 'taskId' in a);
  return { controllerId: states[0]?.taskId, changes: states.map((s) => s.change) };
}

export function registerReview(deps: ReviewDeps, reviews: Reviews): vscode.Disposable[] {
  const proposed: vscode.TextDocumentContentProvider = {
    provideTextDocumentContent: async (uri) => {
      const taskId = uri.path.split('/')[1] ?? '';
      const c = reviews.get(taskId);
      if (!c) return '(this task is not loaded)';
      try {
        return await c.proposedText(uri.query);
      } catch (err) {
        return `(cannot read the agent's version: ${err instanceof Error ? err.message : String(err)})`;
      }
    },
  };
  const report = (r: { applied: number; refused: string[] }): void => {
    // a notification shows one line of a long message: the whole list is one click away
    if (r.refused.length) {
      const summary = `Cowork accepted ${r.applied} change(s) and refused ${r.refused.length}: ${r.refused.join('; ')}`;
      void vscode.window.showWarningMessage(summary, 'Show Details').then((choice) => choice && vscode.window.showWarningMessage(`Cowork accepted ${r.applied} change(s) and refused ${r.refused.length}:`, { modal: true, detail: r.refused.map((x) => `• ${x}`).join('\n') }));
    }
    else void vscode.window.showInformationMessage(`Cowork: accepted ${r.applied} change(s).`);
  };
  const fromScm = async (arg: unknown): Promise<ReviewController | undefined> => {
    if (typeof arg === 'string') return reviews.get(arg);
    if (arg && typeof arg === 'object' && 'id' in arg && typeof (arg as vscode.SourceControl).id === 'string') return reviews.get((arg as vscode.SourceControl).id.replace(/^cowork-/, ''));
    return reviews.pick('Which task?');
  };
  return [
    vscode.workspace.registerTextDocumentContentProvider(PROPOSED_SCHEME, proposed),
    vscode.workspace.registerTextDocumentContentProvider(EMPTY_SCHEME, { provideTextDocumentContent: () => '' }),
    // the host side of a diff for a name a file: URI cannot carry: read by the raw path in the query
    vscode.workspace.registerTextDocumentContentProvider(HOST_SCHEME, {
      provideTextDocumentContent: async (uri) => {
        const c = reviews.get(uri.path.split('/')[1] ?? '');
        if (!c) return '(this task is not loaded)';
        return c.hostText(uri.query).catch((err: unknown) => `(cannot read your version: ${err instanceof Error ? err.message : String(err)})`);
      },
    }),
    vscode.workspace.registerTextDocumentContentProvider(BEFORE_SCHEME, {
      provideTextDocumentContent: async (uri) => {
        const direct = reviews.get(uri.path.split('/')[1] ?? '')?.direct;
        return direct ? direct.beforeText(uri.query) : '(this task is not loaded)';
      },
    }),
    vscode.commands.registerCommand(Commands.openDiff, async (taskId: string, pathB64: string) => {
      const c = reviews.get(taskId);
      if (c?.direct?.has(pathB64)) return c.direct.openDiff(pathB64);
      const change = c?.find(pathB64);
      if (c && change) await c.openDiff(change);
    }),
    vscode.commands.registerCommand(Commands.revertFile, async (...args: unknown[]) => {
      const states = args.flat().filter((a): a is Pick<AppliedState, 'applied' | 'taskId'> => typeof a === 'object' && a !== null && 'applied' in a && 'taskId' in a);
      const c = states[0] ? reviews.get(states[0].taskId) : undefined;
      if (!c?.direct || !states.length) return;
      const names = states.map((s) => displayName(Buffer.from(s.applied.path, 'base64')));
      const ok = await vscode.window.showWarningMessage(`Revert ${names.length === 1 ? names[0]! : `${names.length} files`} to your version from before the task? The agent's change leaves your folder and its view.`, { modal: true }, 'Revert');
      if (!ok) return;
      for (const s of states) {
        try {
          await c.direct.revert(s.applied.path);
        } catch (err) {
          void vscode.window.showWarningMessage(`Cowork: cannot revert ${displayName(Buffer.from(s.applied.path, 'base64'))}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      await c.refresh();
    }),
    vscode.commands.registerCommand(Commands.acceptFile, async (...args: unknown[]) => {
      const { controllerId, changes } = changesOf(args);
      const c = controllerId ? reviews.get(controllerId) : undefined;
      if (c && changes.length) report(await c.accept(changes));
    }),
    vscode.commands.registerCommand(Commands.discardFile, async (...args: unknown[]) => {
      const { controllerId, changes } = changesOf(args);
      const c = controllerId ? reviews.get(controllerId) : undefined;
      if (!c || !changes.length) return;
      const ok = await vscode.window.showWarningMessage(`Discard the agent's changes to ${changes.length === 1 ? changes[0]!.display : `${changes.length} files`}? The agent's view goes back to your version.`, { modal: true }, 'Discard');
      if (ok) await c.discard(changes);
    }),
    vscode.commands.registerCommand(Commands.acceptAll, async (arg?: unknown) => {
      const c = await fromScm(arg);
      if (!c) return void vscode.window.showInformationMessage('Cowork: no task has changes to accept.');
      report(await c.accept(c.all));
    }),
    vscode.commands.registerCommand(Commands.discardAll, async (arg?: unknown) => {
      const c = await fromScm(arg);
      if (!c) return void vscode.window.showInformationMessage('Cowork: no task has changes to discard.');
      const ok = await vscode.window.showWarningMessage(`Discard all ${c.count} change(s) of "${c.task.info.title}"? This cannot be undone.`, { modal: true }, 'Discard All');
      if (ok) await c.discard('all');
    }),
    vscode.commands.registerCommand(Commands.acceptSelectedRanges, async () => {
      // In a diff editor the focused side may be either: use the agent's (right) side.
      const editor = [vscode.window.activeTextEditor, ...vscode.window.visibleTextEditors].find((e) => e?.document.uri.scheme === PROPOSED_SCHEME);
      if (!editor) return void vscode.window.showInformationMessage('Cowork: open a proposed change (its diff) and select the lines to accept.');
      const uri = editor.document.uri;
      const c = reviews.get(uri.path.split('/')[1] ?? '');
      if (!c) return void vscode.window.showWarningMessage('Cowork: this task is not loaded any more.');
      // a selection ending at column 0 of a line does not take that line (as in Git's Stage Selected Ranges)
      const ranges = editor.selections.map((s) => ({ start: s.start.line, end: s.end.character === 0 && s.end.line > s.start.line ? s.end.line - 1 : s.end.line }));
      try {
        const r = await c.acceptRanges(uri.query, ranges);
        if (r.applied === 0) void vscode.window.showInformationMessage(`Cowork: the selection touches none of the ${r.total} changed block(s); nothing was accepted.`);
        else void vscode.window.showInformationMessage(`Cowork: accepted ${r.applied} of ${r.total} changed block(s); the rest stays proposed.`);
      } catch (err) {
        void vscode.window.showWarningMessage(`Cowork: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
    vscode.commands.registerCommand(Commands.openTask, async (arg?: unknown) => {
      const c = await fromScm(arg);
      if (c) await deps.showTask(c.task.info.id);
    }),
  ];
}
