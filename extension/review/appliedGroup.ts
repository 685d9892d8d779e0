// Direct mode in the Source Control view: the files the agent has already changed in the workspace,
// for the record. Each opens a diff from the person's version before the task (kept by
// extension/changes/direct.ts) to the file as it is now, and can be reverted.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { hostMtime, readHostEntry } from '../changes/apply';
import type { Change } from '../changes/changeSet';
import { applyDirectly, DirectRecord, revertDirect, type AppliedEntry } from '../changes/direct';
import { diffView, isBinary, MAX_DIFF_BYTES } from '../changes/diffView';
import { displayIsExact, displayName } from '../changes/names';
import type { GuestVm } from '../guest/guestVm';
import { Commands } from '../ids';
import { BEFORE_SCHEME, closeDirectDiffsNotRecorded, directEmptyUri, HOST_SCHEME } from './diffTabs';
import type { ChangeView } from '../protocol/webview';
import type { Task } from '../session/task';

// cowork-before: the person's version before the task; cowork-host: the host's version of a file
// whose name a file: URI cannot carry exactly (query of both: the raw path, base64)
export { BEFORE_SCHEME, HOST_SCHEME };

export interface AppliedState extends vscode.SourceControlResourceState {
  readonly applied: AppliedEntry;
  readonly taskId: string;
}

type Kind = 'added' | 'modified' | 'deleted';

export class AppliedGroup {
  private readonly group: vscode.SourceControlResourceGroup;
  private readonly record: Promise<DirectRecord>;
  /** refusals already logged (path and content), so a refresh does not repeat them */
  private readonly reported = new Set<string>();

  constructor(
    private readonly task: Task,
    private readonly workspace: vscode.Uri,
    sc: vscode.SourceControl,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.group = sc.createResourceGroup('applied', 'Changed by the agent (direct mode)');
    this.group.hideWhenEmpty = true;
    this.record = DirectRecord.open(path.join(task.storageDir, 'direct'), task.reportState);
  }

  get count(): number {
    return this.group.resourceStates.length;
  }

  /** Writes what the overlay holds into the workspace now; returns the changes that were refused. */
  async apply(guest: GuestVm, changes: readonly Change[]): Promise<Change[]> {
    const r = await applyDirectly(guest, this.workspace.fsPath, await this.record, changes);
    for (const c of r.applied) this.log.info(`[review] direct mode: wrote ${c.kind} ${c.display}`);
    for (const { change, reason } of r.refused) {
      const key = `${change.path.toString('base64')}:${change.sha256 ?? change.kind}`;
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      this.log.warn(`[review] direct mode: refused ${change.display}: ${reason}`);
    }
    await this.update();
    return r.refused.map((x) => x.change);
  }

  async update(): Promise<void> {
    const entries = (await this.record).all();
    this.group.resourceStates = await Promise.all(entries.map((e) => this.stateFor(e)));
    await closeDirectDiffsNotRecorded(this.task.info.id, new Set(entries.map((e) => e.path))).then(
      (n) => n && this.log.info(`[review] closed ${n} diff editor(s) of reverted direct-mode changes`),
      (err: unknown) => this.log.warn(`[review] cannot close the diffs of reverted direct-mode changes: ${String(err)}`),
    );
  }

  private async now(e: AppliedEntry): Promise<Buffer | null> {
    return (await readHostEntry(this.workspace.fsPath, Buffer.from(e.path, 'base64')).catch(() => null))?.data ?? null;
  }

  /** From the record and whether the file is there now (its mtime: no need to read it). */
  private async kindOf(e: AppliedEntry): Promise<Kind> {
    if (e.before === null) return 'added';
    return (await hostMtime(this.workspace.fsPath, Buffer.from(e.path, 'base64'))) !== 0 ? 'modified' : 'deleted';
  }

  private async stateFor(e: AppliedEntry): Promise<AppliedState> {
    const rel = Buffer.from(e.path, 'base64');
    const kind = await this.kindOf(e);
    const label = { added: 'Added', modified: 'Modified', deleted: 'Deleted' }[kind];
    return {
      applied: e,
      taskId: this.task.info.id,
      resourceUri: vscode.Uri.joinPath(this.workspace, displayName(rel)),
      contextValue: 'cowork-applied',
      decorations: {
        strikeThrough: kind === 'deleted',
        tooltip: `${label} by the agent in direct mode (already in your folder; Revert puts your version back)`,
        iconPath: new vscode.ThemeIcon(kind === 'added' ? 'diff-added' : kind === 'deleted' ? 'diff-removed' : 'diff-modified'),
      },
      command: { title: 'Open Diff', command: Commands.openDiff, arguments: [this.task.info.id, e.path] },
    };
  }

  has(pathB64: string): boolean {
    return this.group.resourceStates.some((s) => (s as AppliedState).applied.path === pathB64);
  }

  async openDiff(pathB64: string): Promise<void> {
    const e = (await this.record).get(pathB64);
    if (!e) return;
    const display = displayName(Buffer.from(pathB64, 'base64'));
    const kind = await this.kindOf(e);
    const before = vscode.Uri.from({ scheme: BEFORE_SCHEME, path: `/${this.task.info.id}/${display}`, query: pathB64 });
    const empty = directEmptyUri(this.task.info.id, display, pathB64);
    const left = kind === 'added' ? empty : before;
    const rel = Buffer.from(pathB64, 'base64');
    const now = displayIsExact(rel) ? vscode.Uri.joinPath(this.workspace, rel.toString('utf8')) : vscode.Uri.from({ scheme: HOST_SCHEME, path: `/${this.task.info.id}/${display}`, query: pathB64 });
    const right = kind === 'deleted' ? empty : now;
    await vscode.commands.executeCommand('vscode.diff', left, right, `${display} (Cowork: ${kind} directly)`, { preview: true });
  }

  /** The person's version of a file, for the diff editor's left side. */
  async beforeText(pathB64: string): Promise<string> {
    const record = await this.record;
    const e = record.get(pathB64);
    if (!e) return '(no record of this file)';
    const data = await record.before(e);
    if (!data) return '';
    if (isBinary(data) || data.length > MAX_DIFF_BYTES) return `(binary or large file, ${data.length.toLocaleString()} bytes: no text diff.)\n`;
    return data.toString('utf8');
  }

  async revert(pathB64: string): Promise<void> {
    await revertDirect(await this.task.guest(), this.workspace.fsPath, await this.record, pathB64);
    await this.update();
  }

  async views(): Promise<ChangeView[]> {
    const record = await this.record;
    return Promise.all(
      record.all().map(async (e) => {
        const now = await this.now(e);
        const kind: Kind = e.before === null ? 'added' : now ? 'modified' : 'deleted';
        const base = { path: e.path, display: displayName(Buffer.from(e.path, 'base64')), kind, conflicted: false, applied: true };
        return diffView(base, await record.before(e), now);
      }),
    );
  }
}
