// One task's changes in the Source Control view: a SourceControl labelled with the task's title,
// a "Proposed changes" group, a diff per file (host ↔ the agent's version, served read-only from
// the guest), and accept / discard per file or all. Nothing is written to the workspace except by
// Accept, through extension/changes/apply.ts.
import * as vscode from 'vscode';
import { applyChange, isConflicted, type ConflictChoice } from '../changes/apply';
import { discardInGuest, readChangeSet, type Change } from '../changes/changeSet';
import { prefetch, readProposed } from '../changes/readBatch';
import { Commands } from '../ids';
import type { Task } from '../session/task';

export const PROPOSED_SCHEME = 'cowork-proposed';
export const EMPTY_SCHEME = 'cowork-empty';
/** Files larger than this show a placeholder instead of a diff. */
export const MAX_DIFF_BYTES = 5 * 1024 * 1024;

export interface ChangeState extends vscode.SourceControlResourceState {
  readonly change: Change;
  readonly taskId: string;
  readonly conflicted: boolean;
}

export class ReviewController implements vscode.Disposable {
  private readonly sc: vscode.SourceControl;
  private readonly group: vscode.SourceControlResourceGroup;
  private changes: Change[] = [];
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly emitter = new vscode.EventEmitter<number>();
  readonly onDidChangeCount = this.emitter.event;

  constructor(
    readonly task: Task,
    private readonly workspace: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.sc = vscode.scm.createSourceControl(`cowork-${task.info.id}`, `Cowork: ${task.info.title}`, workspace);
    this.sc.inputBox.visible = false;
    this.group = this.sc.createResourceGroup('proposed', 'Proposed changes');
    this.group.hideWhenEmpty = false;
    task.on('wrote', () => this.scheduleRefresh());
  }

  get count(): number {
    return this.changes.length;
  }

  scheduleRefresh(delayMs = 300): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const guest = await this.task.guest();
        const cs = await readChangeSet(guest);
        for (const p of cs.problems) this.log.warn(`[review] ${p.display}: ${p.message}`);
        this.changes = cs.changes;
        const states: ChangeState[] = [];
        for (const change of cs.changes) states.push(await this.stateFor(change));
        this.group.resourceStates = states;
        this.sc.count = states.length;
        this.emitter.fire(states.length);
      } catch (err) {
        this.log.error(`[review] cannot read the changes of ${this.task.info.id}: ${String(err)}`);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private async stateFor(change: Change): Promise<ChangeState> {
    const conflicted = await isConflicted(this.workspace.fsPath, change, this.task.startedAt);
    const uri = vscode.Uri.joinPath(this.workspace, change.display);
    const label = { added: 'Added', modified: 'Modified', deleted: 'Deleted', symlink: 'Symlink', mode: 'Mode changed' }[change.kind];
    return {
      change,
      taskId: this.task.info.id,
      conflicted,
      resourceUri: uri,
      contextValue: conflicted ? 'cowork-change-conflict' : 'cowork-change',
      decorations: {
        strikeThrough: change.kind === 'deleted',
        tooltip: `${label}${conflicted ? ' — also changed on your side during the task (conflict)' : ''}`,
        iconPath: new vscode.ThemeIcon(conflicted ? 'warning' : change.kind === 'added' ? 'diff-added' : change.kind === 'deleted' ? 'diff-removed' : 'diff-modified'),
      },
      command: { title: 'Open Diff', command: Commands.openDiff, arguments: [this.task.info.id, change.path.toString('base64')] },
    };
  }

  find(pathB64: string): Change | undefined {
    return this.changes.find((c) => c.path.toString('base64') === pathB64);
  }

  async openDiff(change: Change): Promise<void> {
    const host = vscode.Uri.joinPath(this.workspace, change.display);
    const proposed = vscode.Uri.from({ scheme: PROPOSED_SCHEME, path: `/${this.task.info.id}/${change.display}`, query: change.path.toString('base64') });
    const empty = vscode.Uri.from({ scheme: EMPTY_SCHEME, path: `/${change.display}` });
    const left = change.kind === 'added' ? empty : host;
    const right = change.kind === 'deleted' ? empty : proposed;
    await vscode.commands.executeCommand('vscode.diff', left, right, `${change.display} (Cowork: ${change.kind})`, { preview: true });
  }

  async proposedText(pathB64: string): Promise<string> {
    const change = this.find(pathB64);
    if (change?.kind === 'symlink') return `symbolic link → ${change.target?.toString('utf8') ?? ''}\n`;
    if (change?.size !== undefined && change.size > MAX_DIFF_BYTES) return `(${change.size.toLocaleString()} bytes: too large to show as a diff. Accept or discard the file as a whole.)\n`;
    const data = await readProposed(await this.task.guest(), Buffer.from(pathB64, 'base64'));
    if (data.subarray(0, 8192).includes(0)) return `(binary file, ${data.length.toLocaleString()} bytes: no text diff. Accept or discard the file as a whole.)\n`;
    return data.toString('utf8');
  }

  async accept(changes: readonly Change[]): Promise<{ applied: number; refused: string[] }> {
    const guest = await this.task.guest();
    let applied = 0;
    const refused: string[] = [];
    // one round trip for all the files' contents (in batches), not one per file
    const cache = await prefetch(guest, changes.filter((c) => c.kind === 'added' || c.kind === 'modified' || c.kind === 'mode'));
    for (const change of changes) {
      const r = await applyChange(change, {
        workspace: this.workspace.fsPath,
        since: this.task.startedAt,
        readProposed: (rel) => Promise.resolve(cache.get(rel.toString('base64')) ?? readProposed(guest, rel)),
        onConflict: (c) => askConflict(c),
      });
      if (r.outcome === 'refused') {
        refused.push(`${change.display}: ${r.reason}`);
        this.log.warn(`[review] refused ${change.display}: ${r.reason}`);
      } else if (r.outcome !== 'skipped') applied++;
    }
    await this.refresh();
    return { applied, refused };
  }

  async discard(changes: readonly Change[] | 'all'): Promise<void> {
    await discardInGuest(await this.task.guest(), changes === 'all' ? 'all' : changes.map((c) => c.path));
    await this.refresh();
  }

  get all(): readonly Change[] {
    return this.changes;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.sc.dispose();
    this.emitter.dispose();
  }
}

async function askConflict(change: Change): Promise<ConflictChoice> {
  const pick = await vscode.window.showWarningMessage(
    `${change.display} was also changed in your workspace while the task ran. Accepting the agent's version would overwrite your edit.`,
    { modal: true },
    'Overwrite',
    'Keep Both',
  );
  return pick === 'Overwrite' ? 'overwrite' : pick === 'Keep Both' ? 'keep-both' : 'skip';
}
