// One task's changes in the Source Control view: a SourceControl labelled with the task's title,
// a "Proposed changes" group, a diff per file (host ↔ the agent's version, served read-only from
// the guest), and accept / discard per file or all. Nothing is written to the workspace except by
// Accept, through extension/changes/apply.ts. Each row carries the sha256 of the version it was
// rendered from (in the resource state and in the diff's URI), and Accept writes only that version.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { acceptChanges, applyChange, assess, hostMtime, isConflicted, readHostFile, sha256, STALE_MESSAGE, type Assessment, type ConflictChoice, type RiskyChange } from '../changes/apply';
import { asText, diffView, isBinary, MAX_DIFF_BYTES, PANEL_DIFF_BYTES } from '../changes/diffView';
import { applySelectedHunks, type LineRange } from '../changes/hunks';
import { changeFingerprint, changeLabel as labelOf, discardInGuest, readChangeSet, REVIEW_MAX_FILE_BYTES, type Change } from '../changes/changeSet';
import { displayIsExact, displayName } from '../changes/names';
import { OwnWrites } from '../changes/ownWrites';
import { prefetch, readProposed } from '../changes/readBatch';
import { readProposedCapped, streamProposed, withHashes } from '../changes/streamProposed';
import { VirtualTree } from '../changes/symlinks';
import { Commands } from '../ids';
import type { ChangeView } from '../protocol/webview';
import { AppliedGroup, HOST_SCHEME } from './appliedGroup';
import { closeDiffsNotListed, EMPTY_SCHEME, PROPOSED_SCHEME } from './diffTabs';
import type { Task } from '../session/task';

export { EMPTY_SCHEME, PROPOSED_SCHEME, HOST_SCHEME };
export interface ChangeState extends vscode.SourceControlResourceState {
  /** the change as listed, with the sha256 of the version the row shows */
  readonly change: Change;
  readonly taskId: string;
  readonly conflicted: boolean;
  readonly risk?: string;
}

/** The proposed side's URI query: the raw path and the hash of the version shown ("<base64>!<sha256>"). */
export function proposedQuery(change: Change): string {
  return `${change.path.toString('base64')}!${change.sha256 ?? ''}`;
}

export function parseProposedQuery(query: string): { pathB64: string; sha256?: string } {
  const [pathB64 = '', sha = ''] = query.split('!');
  return { pathB64, sha256: sha || undefined };
}

/** "N MiB", for placeholders. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}

export class ReviewController implements vscode.Disposable {
  private readonly sc: vscode.SourceControl;
  private readonly group: vscode.SourceControlResourceGroup;
  private changes: Change[] = [];
  private assessments = new Map<string, Assessment>();
  /** hashes of files above the scan's hash cap, taken in the guest (path → "size:sha256") */
  private readonly bigHashes = new Map<string, string>();
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly emitter = new vscode.EventEmitter<number>();
  private readonly applied: AppliedGroup | undefined;
  private readonly statesByPath = new Map<string, ChangeState>();
  private readonly ownWrites: OwnWrites;
  private readonly vmReady: { dispose(): void };
  private readonly settle: { dispose(): void };
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
    this.group = this.sc.createResourceGroup('proposed', task.info.mode === 'direct' ? 'Not applied (refused, or waiting for you to accept)' : 'Proposed changes');
    this.group.hideWhenEmpty = task.info.mode === 'direct';
    // direct mode: changes go to the workspace at once, and this group keeps the record
    this.applied = task.info.mode === 'direct' ? new AppliedGroup(task, workspace, this.sc, log) : undefined;
    this.ownWrites = new OwnWrites(path.join(task.storageDir, 'own-writes.json'), task.reportState);
    // after each tool call that may write, the agent's next call waits for a scan that started
    // after it (not one already running): no race with the next command (docs/review.md)
    this.settle = task.onSettle(async () => {
      await this.refreshing;
      await this.refresh();
    });
    // after a reload: the task's last scan (persisted by the session layer) at once, a fresh scan when its VM is up
    const seed = task.lastScan;
    if (seed) void this.ownWrites.load().then(async () => (this.changes.length ? undefined : this.show([...seed.changes])));
    this.vmReady = task.vm.onStatus((s) => s.state === 'ready' && this.scheduleRefresh(0));
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
        // a VM that stopped unexpectedly waits for the person's Restart (or follow-up); the last scan stays shown
        if (this.task.vm.lost) return;
        const guest = await this.task.guest();
        const cs = await readChangeSet(guest);
        for (const p of cs.problems) this.log.warn(`[review] ${p.display}: ${p.message}`);
        if (cs.gitInternal) this.log.info(`[review] ${cs.gitInternal} change(s) inside .git stay in the VM (never offered)`);
        // files above the scan's hash cap get their hash in the guest, so Accept can check them too
        const listed = await withHashes(guest, cs.changes, this.bigHashes);
        await this.show(this.applied ? await this.applied.apply(guest, listed) : listed);
        await this.task.recordScan(this.changes);
      } catch (err) {
        this.log.error(`[review] cannot read the changes of ${this.task.info.id}: ${String(err)}`);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Shows a change set (a fresh scan, or the task's last scan after a reload). */
  private async show(changes: Change[]): Promise<void> {
    this.changes = changes;
    // what each change would do on the host: refused, or "runs on your machine"
    const tree = new VirtualTree(this.workspace.fsPath, changes);
    const assessments = new Map<string, Assessment>();
    for (const c of changes) assessments.set(c.path.toString('base64'), await assess(this.workspace.fsPath, c, tree));
    this.assessments = assessments;
    const states: ChangeState[] = [];
    for (const change of this.changes) states.push(await this.stateFor(change));
    this.group.resourceStates = states;
    this.statesByPath.clear();
    for (const st of states) this.statesByPath.set(st.change.path.toString('base64'), st);
    this.sc.count = this.count;
    this.emitter.fire(this.count);
    // the diffs of changes that left the set (Accept, Discard, or the agent undid them) close
    const listed = new Set(changes.map((c) => c.path.toString('base64')));
    await closeDiffsNotListed(this.task.info.id, listed).then(
      (n) => n && this.log.info(`[review] closed ${n} diff editor(s) of changes no longer proposed`),
      (err: unknown) => this.log.warn(`[review] cannot close the diffs of changes no longer proposed: ${String(err)}`),
    );
  }

  private async stateFor(change: Change): Promise<ChangeState> {
    const conflicted = await isConflicted(this.workspace.fsPath, change, this.since(change));
    // the label shown is the exact name (escaped where needed); the host side is always found by the raw path
    const uri = vscode.Uri.joinPath(this.workspace, change.display);
    const a = this.assessments.get(change.path.toString('base64')) ?? {};
    const label = labelOf(change, this.changes) ?? { added: 'Added', modified: 'Modified', deleted: 'Deleted', symlink: `Symlink → ${change.target ? displayName(change.target) : ''}`, mode: `Mode changed to ${(change.mode ?? 0).toString(8)}` }[change.kind];
    const notes = [
      a.risk ? `RUNS ON YOUR MACHINE: ${a.risk} — accepting it asks you to confirm by name` : '',
      a.refused ? `Will be refused: ${a.refused}` : '',
      conflicted ? 'also changed on your side during the task (conflict)' : '',
      (change.size ?? 0) > REVIEW_MAX_FILE_BYTES ? `too large to show: ${mib(change.size!)}` : '',
    ].filter(Boolean);
    return {
      change,
      taskId: this.task.info.id,
      conflicted,
      risk: a.risk,
      resourceUri: uri,
      contextValue: a.risk ? 'cowork-change-runs-on-host' : conflicted ? 'cowork-change-conflict' : 'cowork-change',
      decorations: {
        strikeThrough: change.kind === 'deleted',
        tooltip: [label, ...notes].join(' — '),
        iconPath: new vscode.ThemeIcon(a.refused ? 'error' : a.risk ? 'shield' : conflicted ? 'warning' : change.kind === 'added' ? 'diff-added' : change.kind === 'deleted' ? 'diff-removed' : 'diff-modified'),
      },
      command: { title: 'Open Diff', command: Commands.openDiff, arguments: [this.task.info.id, change.path.toString('base64')] },
    };
  }

  find(pathB64: string): Change | undefined {
    return this.changes.find((c) => c.path.toString('base64') === pathB64);
  }

  /** The host side of a diff: the file itself when its name round-trips through a file: URI, else read by its raw path. */
  hostUri(change: Change): vscode.Uri {
    if (displayIsExact(change.path)) {
      const uri = vscode.Uri.joinPath(this.workspace, change.path.toString('utf8'));
      if (Buffer.from(uri.fsPath).equals(Buffer.concat([Buffer.from(this.workspace.fsPath), Buffer.from(path.sep), change.path]))) return uri;
    }
    return vscode.Uri.from({ scheme: HOST_SCHEME, path: `/${this.task.info.id}/${change.display}`, query: change.path.toString('base64') });
  }

  /** The host's version for the diff editor (a name a file: URI cannot carry). */
  async hostText(pathB64: string): Promise<string> {
    const data = await readHostFile(this.workspace.fsPath, Buffer.from(pathB64, 'base64'));
    if (!data) return '';
    if (data.length > MAX_DIFF_BYTES || isBinary(data)) return `(binary or large file, ${data.length.toLocaleString()} bytes: no text diff.)\n`;
    return data.toString('utf8');
  }

  async openDiff(change: Change): Promise<void> {
    const host = this.hostUri(change);
    const proposed = vscode.Uri.from({ scheme: PROPOSED_SCHEME, path: `/${this.task.info.id}/${change.display}`, query: proposedQuery(change) });
    // the task and the raw path ride on the empty side too, so a deleted file's diff is found and closed (diffTabs.ts)
    const empty = vscode.Uri.from({ scheme: EMPTY_SCHEME, path: `/${this.task.info.id}/${change.display}`, query: change.path.toString('base64') });
    const left = change.kind === 'added' ? empty : host;
    const right = change.kind === 'deleted' ? empty : proposed;
    await vscode.commands.executeCommand('vscode.diff', left, right, `${change.display} (Cowork: ${change.kind})`, { preview: true });
  }

  /** The agent's version for the diff editor: exactly the version whose hash is in the URI, or a note that it changed. */
  async proposedText(query: string): Promise<string> {
    const { pathB64, sha256: seen } = parseProposedQuery(query);
    const change = this.find(pathB64);
    if (change?.kind === 'symlink') return `symbolic link → ${change.target ? displayName(change.target) : ''}\n`;
    if (change?.size !== undefined && change.size > REVIEW_MAX_FILE_BYTES) return `(too large to show: ${mib(change.size)}. Accept streams it to your folder, checked against the listed hash; or discard it.)\n`;
    if (change?.size !== undefined && change.size > MAX_DIFF_BYTES) return `(${change.size.toLocaleString()} bytes: too large to show as a diff. Accept or discard the file as a whole.)\n`;
    const data = await readProposed(await this.task.guest(), Buffer.from(pathB64, 'base64'));
    if (seen && sha256(data) !== seen) {
      this.scheduleRefresh(0);
      return `(${change?.display ?? 'this file'} ${STALE_MESSAGE}: the agent changed it after the list was read. The list is being refreshed; open the diff again.)\n`;
    }
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
      const a = this.assessments.get(b64);
      keys.set(b64, `${change.kind}:${change.sha256 ?? ''}:${change.mode ?? ''}:${mtime}:${a?.risk ?? ''}:${a?.refused ?? ''}:${labelOf(change, this.changes) ?? ''}`);
    }
    const toRead = this.changes.filter((c) => (c.kind === 'added' || c.kind === 'modified') && (c.size ?? 0) <= Math.min(PANEL_DIFF_BYTES, REVIEW_MAX_FILE_BYTES) && this.diffCache.get(c.path.toString('base64'))?.key !== keys.get(c.path.toString('base64')));
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
      // The diff shows only bytes with the row's hash: a file the agent rewrote since the scan (and
      // may rewrite back before Accept) is never shown under the old hash, nor cached.
      const agent = proposed.get(b64);
      if (agent && change.sha256 && sha256(agent) !== change.sha256) {
        out.push(await this.viewOf(change, undefined, conflicted, "the agent changed this file after the list was read: the list is being refreshed"));
        this.scheduleRefresh();
        continue;
      }
      const view = await this.viewOf(change, agent, conflicted);
      this.diffCache.set(b64, { key, view });
      out.push(view);
    }
    return out;
  }

  private async viewOf(change: Change, agent: Buffer | undefined, conflicted: boolean, stale?: string): Promise<ChangeView> {
    const a = this.assessments.get(change.path.toString('base64')) ?? {};
    const base = { path: change.path.toString('base64'), display: change.display, kind: change.kind, conflicted, applied: false, sha256: change.sha256, fingerprint: changeFingerprint(change), risk: a.risk, refusal: a.refused, label: labelOf(change, this.changes) };
    const note = (text: string): ChangeView => ({ ...base, added: 0, removed: 0, lines: [], truncated: false, note: text });
    if (stale) return note(stale);
    if ((change.size ?? 0) > REVIEW_MAX_FILE_BYTES) return note(`too large to show: ${mib(change.size!)}`);
    switch (change.kind) {
      case 'symlink':
        return note(`symbolic link → ${change.target ? displayName(change.target) : ''}`);
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
  async acceptRanges(query: string, ranges: readonly LineRange[]): Promise<{ applied: number; total: number }> {
    await this.ownWrites.load();
    const { pathB64, sha256: seen } = parseProposedQuery(query);
    const change = this.find(pathB64);
    if (!change) throw new Error('This file is no longer in the change set.');
    if (change.kind !== 'modified') throw new Error(`Only a modified file can be accepted in part; ${change.display} is ${change.kind}. Accept or discard it as a whole.`);
    if ((change.size ?? 0) > REVIEW_MAX_FILE_BYTES) throw new Error(`${change.display} is too large to accept in part: accept or discard it as a whole.`);
    const host = await readHostFile(this.workspace.fsPath, change.path);
    const agent = await readProposedCapped(await this.task.guest(), change.path);
    // the hunks are computed from this read: it must be the version the diff showed
    if (sha256(agent) !== (seen ?? change.sha256)) {
      this.scheduleRefresh(0);
      throw new Error(`${change.display} ${STALE_MESSAGE}.`);
    }
    const a = await assess(this.workspace.fsPath, change, new VirtualTree(this.workspace.fsPath, this.changes));
    if (a.refused) throw new Error(a.refused);
    const confirmed = new Set<string>();
    if (a.risk) {
      if ((await askRunsOnHost([{ change, reason: a.risk }], false)) !== 'all') return { applied: 0, total: 0 };
      confirmed.add(pathB64);
    }
    if (!host) throw new Error(`${change.display} no longer exists in your workspace.`);
    const before = isBinary(host) ? undefined : asText(host);
    const after = isBinary(agent) ? undefined : asText(agent);
    if (before === undefined || after === undefined) throw new Error(`${change.display} is not UTF-8 text: accept or discard it as a whole.`);
    const merged = applySelectedHunks(before, after, ranges);
    if (merged.applied === 0) return { applied: 0, total: merged.total };
    const r = await applyChange(
      change,
      {
        workspace: this.workspace.fsPath,
        since: this.since(change),
        // a merge of hunks of the checked version above: Cowork's bytes, not the scan's
        ownBytes: true,
        confirmed,
        readProposed: () => Promise.resolve(Buffer.from(merged.text, 'utf8')),
        onConflict: (c) => askConflict(c),
      },
      a,
    );
    if (r.outcome === 'refused') throw new Error(r.reason);
    if (r.outcome === 'skipped') return { applied: 0, total: merged.total };
    await this.rememberWrites([change]);
    this.log.info(`[review] accepted ${merged.applied} of ${merged.total} hunk(s) of ${change.display}`);
    await this.refresh();
    return { applied: merged.applied, total: merged.total };
  }

  /**
   * Accepts the changes as the person saw them (each with the hash its row showed). Changes that
   * run code on the host are confirmed together, by name, in one modal dialog first.
   */
  async accept(changes: readonly Change[]): Promise<{ applied: number; refused: string[] }> {
    await this.ownWrites.load();
    const guest = await this.task.guest();
    const written: Change[] = [];
    const refused: string[] = [];
    // one round trip for all the files' contents (in batches), not one per file; large files stream
    const cache = await prefetch(guest, changes.filter((c) => (c.kind === 'added' || c.kind === 'modified' || c.kind === 'mode') && (c.size ?? 0) <= REVIEW_MAX_FILE_BYTES));
    let declined = false;
    let cancelled = false;
    const results = await acceptChanges(changes, {
      workspace: this.workspace.fsPath,
      changeSet: this.changes,
      since: this.task.startedAt,
      sinceOf: (c) => this.since(c),
      readProposed: (rel) => Promise.resolve(cache.get(rel.toString('base64')) ?? readProposedCapped(guest, rel)),
      streamProposed: (rel, fh) => streamProposed(guest, rel, fh),
      onConflict: (c) => askConflict(c),
      confirmRisky: async (risky) => {
        const answer = await askRunsOnHost(risky, risky.length < changes.length);
        cancelled = answer === 'cancel';
        declined = answer !== 'all';
        if (cancelled) throw new AcceptCancelled();
        return answer === 'all' ? risky.map((r) => r.change) : [];
      },
    }).catch((err: unknown) => {
      if (err instanceof AcceptCancelled) return [];
      throw err;
    });
    if (cancelled) return { applied: 0, refused: [] };
    let stale = false;
    for (const r of results) {
      if (r.outcome === 'refused') {
        if (r.code === 'stale') {
          stale = true;
          this.bigHashes.delete(r.change.path.toString('base64'));
        }
        if (r.code === 'runs-on-host' && declined) continue; // the person said no in the dialog: not a refusal to report
        refused.push(r.code === 'unsafe' ? r.reason : `${r.change.display}: ${r.reason}`);
        this.log.warn(`[review] refused ${r.change.display}: ${r.reason}`);
      } else if (r.outcome !== 'skipped') written.push(r.change);
    }
    if (stale) this.log.info('[review] a proposed file changed after the scan: listing the changes again');
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
    this.vmReady.dispose();
    this.settle.dispose();
    this.sc.dispose();
    this.emitter.dispose();
  }
}

class AcceptCancelled extends Error {}

/**
 * The separate confirmation for changes that run code on the person's machine: one modal dialog
 * naming every path and why. 'all': write them too; 'others': write only the rest of the batch;
 * 'cancel': write nothing.
 */
async function askRunsOnHost(risky: readonly RiskyChange[], othersToo: boolean): Promise<'all' | 'others' | 'cancel'> {
  const list = risky.map((r) => `• ${r.change.display} — ${r.reason}`).join('\n');
  const one = risky.length === 1;
  const including = one ? `Accept ${risky[0]!.change.display}` : 'Accept Including These';
  const others = 'Accept Only the Others';
  const pick = await vscode.window.showWarningMessage(
    one ? `${risky[0]!.change.display} runs on your machine. Write it to your folder?` : `${risky.length} of these changes run on your machine. Write them to your folder too?`,
    { modal: true, detail: `${list}\n\nThese files run code or change how a tool behaves on your computer (outside the VM) once they are in your folder. Accept them only if you have read them.` },
    ...(othersToo ? [including, others] : [including]),
  );
  return pick === including ? 'all' : pick === others ? 'others' : 'cancel';
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
