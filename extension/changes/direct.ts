// Direct mode: the agent's changes land in the workspace as soon as a tool call that may write has
// finished, with nobody accepting them, and the record of what was changed (with the person's
// version from before, so each file can be compared and reverted) is kept per task.
//
// Why not a read-write mount of the workspace: with the overlay kept in both modes, the same
// change set says exactly which files the agent touched (a rw mount would need a scan of the whole
// workspace to know), every write goes through the checks of apply.ts (no path outside the
// workspace, atomic per file), and the person's version of a file is saved before it is first
// overwritten. The cost is that a change reaches the folder when the tool call ends, not mid-command.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { GuestVm } from '../guest/guestVm';
import { ignoreProblems, readJsonState, writeFileAtomic, writeJsonAtomic, type StateReporter } from '../state/stateFiles';
import { applyChange, assess, readHostEntry, type RefusalCode } from './apply';
import { discardInGuest, REVIEW_MAX_FILE_BYTES, type Change } from './changeSet';
import { prefetch } from './readBatch';
import { displayName } from './names';
import { streamProposed, withHashes } from './streamProposed';
import { VirtualTree } from './symlinks';

const Entry = z.object({
  /** workspace-relative path, raw bytes as base64 */
  path: z.string(),
  /** sha256 of the person's version saved under blobs/, or null when the file did not exist */
  before: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  beforeMode: z.number().int().optional(),
  /** first and last time the agent changed it */
  firstAt: z.number(),
  lastAt: z.number(),
  /** sha256 of the agent's version last written (a deletion: absent); the same version is never read or written again */
  written: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type AppliedEntry = z.infer<typeof Entry>;

/** Larger files are changed without a saved "before" (the record says so). */
export const MAX_BEFORE_BYTES = 64 * 1024 * 1024;

export class DirectRecord {
  private entries = new Map<string, AppliedEntry>();
  /** hashes of files above the scan's hash cap, taken in the guest (streamProposed.withHashes) */
  readonly bigHashes = new Map<string, string>();

  private constructor(private readonly dir: string) {}

  /**
   * The record in `dir` (the task's storage), empty when there is none yet. An unreadable one is
   * moved aside and reported by the state module (never overwritten by the next save: it holds the
   * person's versions).
   */
  static async open(dir: string, report: StateReporter = ignoreProblems): Promise<DirectRecord> {
    const r = new DirectRecord(dir);
    for (const e of (await readJsonState(r.indexFile, (v) => z.array(Entry).parse(v), report)) ?? []) r.entries.set(e.path, e);
    return r;
  }

  private get indexFile(): string {
    return path.join(this.dir, 'applied.json');
  }

  all(): AppliedEntry[] {
    return [...this.entries.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path, 'base64'), Buffer.from(b.path, 'base64')));
  }

  get(pathB64: string): AppliedEntry | undefined {
    return this.entries.get(pathB64);
  }

  /** The person's version of a file from before the agent first changed it (null: it did not exist). */
  async before(e: AppliedEntry): Promise<Buffer | null> {
    return e.before ? readFile(path.join(this.dir, 'blobs', e.before)) : null;
  }

  /** Saves the host's current version of `rel` the first time the agent changes it; true when it did. */
  async rememberBefore(workspace: string, rel: Buffer, now = Date.now()): Promise<boolean> {
    const key = rel.toString('base64');
    const known = this.entries.get(key);
    if (known) {
      this.entries.set(key, { ...known, lastAt: now });
      return false;
    }
    const host = await readHostEntry(workspace, rel);
    let before: string | null = null;
    if (host) {
      if (host.data.length > MAX_BEFORE_BYTES) throw new Error(`${rel.toString()} is larger than ${MAX_BEFORE_BYTES / 1024 / 1024} MiB: not changing it without a copy of your version.`);
      before = createHash('sha256').update(host.data).digest('hex');
      await writeFileAtomic(path.join(this.dir, 'blobs', before), host.data);
    }
    this.entries.set(key, { path: key, before, beforeMode: host?.mode, firstAt: now, lastAt: now });
    return true;
  }

  /** True when this exact version of the change was written already (nothing to read or write again). */
  alreadyWritten(change: Change): boolean {
    const e = this.entries.get(change.path.toString('base64'));
    return !!e && !!change.sha256 && (change.kind === 'added' || change.kind === 'modified' || change.kind === 'mode') && e.written === change.sha256;
  }

  /** Remembers the hash of what was written (saved with the next save()). */
  noteWritten(rel: Buffer, sha256: string | undefined): void {
    const key = rel.toString('base64');
    const e = this.entries.get(key);
    if (e) this.entries.set(key, { ...e, written: sha256 });
  }

  /** Drops a path from the record (saved with the next save()). */
  drop(pathB64: string): void {
    this.entries.delete(pathB64);
  }

  async forget(pathB64: string): Promise<void> {
    this.drop(pathB64);
    await this.save();
  }

  async save(): Promise<void> {
    await writeJsonAtomic(this.indexFile, this.all());
  }
}

export interface DirectResult {
  readonly applied: Change[];
  /** not written: refused, or (code 'runs-on-host') waiting for the person to accept it by name */
  readonly refused: { change: Change; reason: string; code: RefusalCode }[];
}

/**
 * Writes the agent's changes into the workspace now, saving the person's versions first. A change
 * that runs code on the host is never written here: it waits as a proposed change until the
 * person accepts it by name. A version already written (same hash in the record) is neither read
 * nor written again, so a later edit of the person's is not overwritten by it.
 */
export async function applyDirectly(guest: GuestVm, workspace: string, record: DirectRecord, changes: readonly Change[]): Promise<DirectResult> {
  const applied: Change[] = [];
  const refused: DirectResult['refused'] = [];
  changes = await withHashes(guest, changes, record.bigHashes);
  const tree = new VirtualTree(workspace, changes);
  const todo: { change: Change; a: Awaited<ReturnType<typeof assess>> }[] = [];
  for (const change of changes) {
    if (record.alreadyWritten(change)) continue;
    const a = await assess(workspace, change, tree);
    if (a.refused) refused.push({ change, reason: a.refused, code: 'unsafe' });
    else if (a.risk) refused.push({ change, reason: `runs on your machine (${a.risk}): waiting for you to accept it`, code: 'runs-on-host' });
    else todo.push({ change, a });
  }
  const reads = todo.map((t) => t.change).filter((c) => (c.kind === 'added' || c.kind === 'modified' || c.kind === 'mode') && (c.size ?? 0) <= REVIEW_MAX_FILE_BYTES);
  const contents = await prefetch(guest, reads);
  for (const { change, a } of todo) {
    let fresh: boolean;
    try {
      fresh = await record.rememberBefore(workspace, change.path);
    } catch (err) {
      refused.push({ change, reason: err instanceof Error ? err.message : String(err), code: 'failed' });
      continue;
    }
    const r = await applyChange(
      change,
      {
        workspace,
        since: 0,
        tree,
        readProposed: (rel) => {
          const data = contents.get(rel.toString('base64'));
          return data ? Promise.resolve(data) : Promise.reject(new Error('the file is no longer in the overlay'));
        },
        streamProposed: (rel, fh) => streamProposed(guest, rel, fh),
      },
      a,
    );
    if (r.outcome === 'refused' && r.code === 'stale') record.bigHashes.delete(change.path.toString('base64'));
    if (r.outcome !== 'refused') {
      applied.push(change);
      record.noteWritten(change.path, r.sha256);
    } else {
      refused.push({ change, reason: r.reason, code: r.code });
      // nothing reached the host: a path first seen now needs no record
      if (fresh) record.drop(change.path.toString('base64'));
    }
  }
  await record.save();
  return { applied, refused };
}

/** Puts the person's version back (or removes a file the agent added), and lets the guest see it. */
export async function revertDirect(guest: GuestVm, workspace: string, record: DirectRecord, pathB64: string): Promise<void> {
  const e = record.get(pathB64);
  if (!e) throw new Error('Cowork has no record of changing this file.');
  const rel = Buffer.from(pathB64, 'base64');
  const before = await record.before(e);
  const change: Change = before ? { path: rel, display: displayName(rel), kind: 'modified', mode: e.beforeMode } : { path: rel, display: displayName(rel), kind: 'deleted' };
  // the person's own saved version: no scan hash applies, and it needs no confirmation
  const r = await applyChange(change, { workspace, since: 0, ownBytes: true, confirmed: new Set([pathB64]), readProposed: () => Promise.resolve(before!) });
  if (r.outcome === 'refused') throw new Error(r.reason);
  // the overlay still holds the agent's version: drop it so the agent sees the reverted file
  await discardInGuest(guest, [rel]);
  await record.forget(pathB64);
}
