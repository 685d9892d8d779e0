// One task's changes in the Source Control view: a SourceControl labelled with the task's title,
// a "Proposed changes" group, a diff per file (host ↔ the agent's version, served read-only from
// the guest), and accept / discard per file or all. Nothing is written to the workspace except by
// Accept, through extension/changes/apply.ts.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { applyChange, hostMtime, isConflicted, readHostFile, type ConflictChoice } from '../changes/apply';
import { asText, diffView, isBinary, MAX_DIFF_BYTES, PANEL_DIFF_BYTES } from '../changes/diffView';
import { applySelectedHunks, type LineRange } from '../changes/hunks';
import { discardInGuest, readChangeSet, type Change } from '../changes/changeSet';
import { OwnWrites } from '../changes/ownWrites';
import { prefetch, readProposed } from '../changes/readBatch';
import { Commands } from '../ids';
import type { ChangeView } from '../protocol/webview';
import { AppliedGroup } from './appliedGroup';
import type { Task } from '../session/task';

export const PROPOSED_SCHEME = 'cowork-proposed';
export const EMPTY_SCHEME = 'cowork-empty';
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
  private readonly applied: AppliedGroup | undefined;
  private readonly statesByPath = new Map<string, ChangeState>();
  private readonly ownWrites: OwnWrites;
  /** panel diffs by path, valid while the agent's hash and the host file's mtime stay the same */
  private readonly diffCache = new Map<string, { key: string; view: ChangeView }>();
  readonly onDidChangeCount = this.emitter.event;

  constructor(
    readonly task: Task,
    private readonly workspace: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.sc = vscode.scm.createSourceControl(`cowork-${task.info.id}`, `Cowork: ${task.info.title}`, workspace);
    this.sc.inputBox.visible = false;
    this.group = this.sc.createResourceGroup('proposed', task.info.mode === 'direct' ? 'Not applied (refused)' : 'Proposed changes');
    this.group.hideWhenEmpty = task.info.mode === 'direct';
    // direct mode: changes go to the workspace at once, and this group keeps the record
    this.applied = task.info.mode === 'direct' ? new AppliedGroup(task, workspace, this.sc, log) : undefined;
    this.ownWrites = new OwnWrites(path.join(task.storageDir, 'own-writes.json'));
    task.on('wrote', () => this.scheduleRefresh());
  }

  /** Proposed changes, plus (direct mode) the files already changed in the workspace. */
  get count(): number {
    return this.changes.length + (this.applied?.count ?? 0);
  }

  /** Direct mode's record of the files written straight to the workspace. */
  get direct(): AppliedGroup | undefined {
    return this.applied;
  }

  scheduleRefresh(delayMs = 300): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        await this.ownWrites.load();
        const guest = await this.task.guest();
        const cs = await readChangeSet(guest);
        for (const p of cs.problems) this.log.warn(`[review] ${p.display}: ${p.message}`);
        this.changes = this.applied ? await this.applied.apply(guest, cs.changes) : cs.changes;
        const states: ChangeState[] = [];
        for (const change of this.changes) states.push(await this.stateFor(change));
        this.group.resourceStates = states;
        this.statesByPath.clear();
        for (const st of states) this.statesByPath.set(st.change.path.toString('base64'), st);
        this.sc.count = this.count;
        this.emitter.fire(this.count);
      } catch (err) {
        this.log.error(`[review] cannot read the changes of ${this.task.info.id}: ${String(err)}`);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private async stateFor(change: Change): Promise<ChangeState> {
    const conflicted = await isConflicted(this.workspace.fsPath, change, this.since(change));
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
    if (isBinary(data)) return `(binary file, ${data.length.toLocaleString()} bytes: no text diff. Accept or discard the file as a whole.)\n`;
    return data.toString('utf8');
  }

  /**
   * Host edits after this time make a change conflicted: the task's start, or our own last write
   * of the file (a partial accept, or an earlier accept the agent has since built on), which is
   * not the person's edit.
   */
  private since(change: Change): number {
    return this.ownWrites.since(change.path, this.task.startedAt);
  }

  private async rememberWrites(changes: readonly Change[]): Promise<void> {
    try {
      await this.ownWrites.record(this.workspace.fsPath, changes.map((c) => c.path));
    } catch (err) {
      this.log.warn(`[review] cannot remember Cowork's own writes: ${String(err)} (a later change to an accepted file may be flagged as a conflict)`);
    }
  }

  /** The changes as the panel shows them: a unified diff per text file, a note otherwise. */
  async views(): Promise<ChangeView[]> {
    return [...(this.applied ? await this.applied.views() : []), ...(await this.proposedViews())];
  }

  private async proposedViews(): Promise<ChangeView[]> {
    const ws = this.workspace.fsPath;
    const keys = new Map<string, string>();
    for (const change of this.changes) {
      const b64 = change.path.toString('base64');
      const mtime = await hostMtime(ws, change.path);
      keys.set(b64, `${change.kind}:${change.sha256 ?? ''}:${change.mode ?? ''}:${mtime}`);
    }
    const toRead = this.changes.filter((c) => (c.kind === 'added' || c.kind === 'modified') && (c.size ?? 0) <= PANEL_DIFF_BYTES && this.diffCache.get(c.path.toString('base64'))?.key !== keys.get(c.path.toString('base64')));
    const proposed = toRead.length ? await prefetch(await this.task.guest(), toRead) : new Map<string, Buffer>();
    const out: ChangeView[] = [];
    for (const change of this.changes) {
      const b64 = change.path.toString('base64');
      const key = keys.get(b64)!;
      const cached = this.diffCache.get(b64);
      const conflicted = this.statesByPath.get(b64)?.conflicted ?? false;
      if (cached?.key === key) {
        out.push({ ...cached.view, conflicted });
        continue;
      }
      const view = await this.viewOf(change, proposed.get(b64), conflicted);
      this.diffCache.set(b64, { key, view });
      out.push(view);
    }
    return out;
  }

  private async viewOf(change: Change, agent: Buffer | undefined, conflicted: boolean): Promise<ChangeView> {
    const base = { path: change.path.toString('base64'), display: change.display, kind: change.kind, conflicted, applied: false };
    const note = (text: string): ChangeView => ({ ...base, added: 0, removed: 0, lines: [], truncated: false, note: text });
    switch (change.kind) {
      case 'symlink':
        return note(`symbolic link → ${change.target?.toString('utf8') ?? ''}`);
      case 'mode':
        return note(`mode changed to ${(change.mode ?? 0).toString(8)}, content unchanged`);
      case 'deleted':
        return diffView(base, await readHostFile(this.workspace.fsPath, change.path).catch(() => null), null);
      case 'added':
      case 'modified':
        if (!agent) return note(`${(change.size ?? 0).toLocaleString()} bytes: open the diff editor to compare`);
        return diffView(base, change.kind === 'modified' ? await readHostFile(this.workspace.fsPath, change.path).catch(() => null) : null, agent);
    }
  }

  /**
   * Partial accept: writes to the host file only the hunks of the agent's version that `ranges`
   * (lines of the agent's version, as selected in the diff editor) touch. The rest of the agent's
   * change stays proposed.
   */
  async acceptRanges(pathB64: string, ranges: readonly LineRange[]): Promise<{ applied: number; total: number }> {
    await this.ownWrites.load();
    const change = this.find(pathB64);
    if (!change) throw new Error('This file is no longer in the change set.');
    if (change.kind !== 'modified') throw new Error(`Only a modified file can be accepted in part; ${change.display} is ${change.kind}. Accept or discard it as a whole.`);
    const host = await readHostFile(this.workspace.fsPath, change.path);
    const agent = await readProposed(await this.task.guest(), change.path);
    if (!host) throw new Error(`${change.display} no longer exists in your workspace.`);
    const before = isBinary(host) ? undefined : asText(host);
    const after = isBinary(agent) ? undefined : asText(agent);
    if (before === undefined || after === undefined) throw new Error(`${change.display} is not UTF-8 text: accept or discard it as a whole.`);
    const merged = applySelectedHunks(before, after, ranges);
    if (merged.applied === 0) return { applied: 0, total: merged.total };
    const r = await applyChange(change, {
      workspace: this.workspace.fsPath,
      since: this.since(change),
      readProposed: () => Promise.resolve(Buffer.from(merged.text, 'utf8')),
      onConflict: (c) => askConflict(c),
    });
    if (r.outcome === 'refused') throw new Error(r.reason);
    if (r.outcome === 'skipped') return { applied: 0, total: merged.total };
    await this.rememberWrites([change]);
    this.log.info(`[review] accepted ${merged.applied} of ${merged.total} hunk(s) of ${change.display}`);
    await this.refresh();
    return { applied: merged.applied, total: merged.total };
  }

  async accept(changes: readonly Change[]): Promise<{ applied: number; refused: string[] }> {
    await this.ownWrites.load();
    const guest = await this.task.guest();
    const written: Change[] = [];
    const refused: string[] = [];
    // one round trip for all the files' contents (in batches), not one per file
    const cache = await prefetch(guest, changes.filter((c) => c.kind === 'added' || c.kind === 'modified' || c.kind === 'mode'));
    for (const change of changes) {
      const r = await applyChange(change, {
        workspace: this.workspace.fsPath,
        since: this.since(change),
        readProposed: (rel) => Promise.resolve(cache.get(rel.toString('base64')) ?? readProposed(guest, rel)),
        onConflict: (c) => askConflict(c),
      });
      if (r.outcome === 'refused') {
        refused.push(`${change.display}: ${r.reason}`);
        this.log.warn(`[review] refused ${change.display}: ${r.reason}`);
      } else if (r.outcome !== 'skipped') written.push(change);
    }
    await this.rememberWrites(written);
    await this.refresh();
    return { applied: written.length, refused };
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
