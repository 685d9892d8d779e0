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
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { GuestVm } from '../guest/guestVm';
import { applyChange, readHostEntry } from './apply';
import { discardInGuest, type Change } from './changeSet';
import { prefetch } from './readBatch';

const Entry = z.object({
  /** workspace-relative path, raw bytes as base64 */
  path: z.string(),
  /** sha256 of the person's version saved under blobs/, or null when the file did not exist */
  before: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  beforeMode: z.number().int().optional(),
  /** first and last time the agent changed it */
  firstAt: z.number(),
  lastAt: z.number(),
});
export type AppliedEntry = z.infer<typeof Entry>;

/** Larger files are changed without a saved "before" (the record says so). */
export const MAX_BEFORE_BYTES = 64 * 1024 * 1024;

export class DirectRecord {
  private entries = new Map<string, AppliedEntry>();

  private constructor(private readonly dir: string) {}

  /** The record in `dir` (the task's storage), empty when there is none yet or it is unreadable. */
  static async open(dir: string): Promise<DirectRecord> {
    const r = new DirectRecord(dir);
    try {
      for (const e of z.array(Entry).parse(JSON.parse(await readFile(r.indexFile, 'utf8')))) r.entries.set(e.path, e);
    } catch {
      // nothing applied yet
    }
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
      await mkdir(path.join(this.dir, 'blobs'), { recursive: true });
      await writeFile(path.join(this.dir, 'blobs', before), host.data);
    }
    this.entries.set(key, { path: key, before, beforeMode: host?.mode, firstAt: now, lastAt: now });
    return true;
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
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.indexFile}.tmp`;
    await writeFile(tmp, JSON.stringify(this.all(), null, 1));
    await rename(tmp, this.indexFile);
  }
}

export interface DirectResult {
  readonly applied: Change[];
  readonly refused: { change: Change; reason: string }[];
}

/** Writes the agent's changes into the workspace now, saving the person's versions first. */
export async function applyDirectly(guest: GuestVm, workspace: string, record: DirectRecord, changes: readonly Change[]): Promise<DirectResult> {
  const applied: Change[] = [];
  const refused: { change: Change; reason: string }[] = [];
  const contents = await prefetch(guest, changes.filter((c) => c.kind === 'added' || c.kind === 'modified' || c.kind === 'mode'));
  for (const change of changes) {
    let fresh: boolean;
    try {
      fresh = await record.rememberBefore(workspace, change.path);
    } catch (err) {
      refused.push({ change, reason: err instanceof Error ? err.message : String(err) });
      continue;
    }
    const r = await applyChange(change, {
      workspace,
      since: 0,
      readProposed: (rel) => {
        const data = contents.get(rel.toString('base64'));
        return data ? Promise.resolve(data) : Promise.reject(new Error('the file is no longer in the overlay'));
      },
    });
    if (r.outcome !== 'refused') applied.push(change);
    else {
      refused.push({ change, reason: r.reason });
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
  const change: Change = before ? { path: rel, display: rel.toString('utf8'), kind: 'modified', mode: e.beforeMode } : { path: rel, display: rel.toString('utf8'), kind: 'deleted' };
  const r = await applyChange(change, { workspace, since: 0, readProposed: () => Promise.resolve(before!) });
  if (r.outcome === 'refused') throw new Error(r.reason);
  // the overlay still holds the agent's version: drop it so the agent sees the reverted file
  await discardInGuest(guest, [rel]);
  await record.forget(pathB64);
}
