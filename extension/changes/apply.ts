// Writes accepted changes into the host workspace, and nowhere else. Every path is resolved one
// component at a time from the workspace's real path: a host-side symlink is followed only when
// its target stays inside the workspace, a final component that is a symlink leaving it is
// refused, and a file is written to a temporary name in its folder, synced and renamed over the
// old one (atomic per file). On top of that, before a byte is written:
//  - the path, resolved through every symlink on the host and in the change set under any mix of
//    accepted and pending changes (symlinks.ts), must stay inside and out of `.git`;
//  - a change that runs code on the host (hostRisk.ts) is written only when the person confirmed
//    that path by name;
//  - the bytes written are the bytes whose sha256 the person saw: hashed after reading and
//    compared with the change set's hash (a mismatch: "changed since you reviewed it");
//  - the mode is at most 0777 & ~umask: never setuid, setgid or sticky.
import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { checkRelative, REVIEW_MAX_FILE_BYTES, type Change } from './changeSet';
import { currentUmask, hostMode, hostRisk, isGitInternal, riskOfPath } from './hostRisk';
import { displayName } from './names';
import { parseLinkTarget, UnsafeLinkError, VirtualTree } from './symlinks';

export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
}

/** The proposed file is not the one the person saw (its hash differs from the listed one). */
export class ChangedSinceReviewError extends Error {
  override readonly name = 'ChangedSinceReviewError';
  constructor(display: string) {
    super(`${display} changed since you reviewed it — look again.`);
  }
}

export const STALE_MESSAGE = 'changed since you reviewed it — look again';

const SEP = Buffer.from('/');

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SEP, name]);
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function lstatOrNull(p: Buffer): Promise<Stats | null> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface Resolved {
  /** the workspace's real path */
  readonly root: string;
  /** real path of the containing folder */
  readonly dir: Buffer;
  readonly name: Buffer;
  readonly target: Buffer;
  /** the real path relative to the workspace (what is actually written) */
  readonly realRel: Buffer;
}

/**
 * Resolves a change's path inside the workspace; creates missing folders when asked. A final
 * component that is a symlink leaving the workspace is refused unless `finalLinkOk` (a deletion
 * removes the link itself, never what it points to).
 */
export async function resolveInside(workspace: string, rel: Buffer, createDirs: boolean, finalLinkOk = false): Promise<Resolved | null> {
  checkRelative(rel);
  const root = await fs.realpath(workspace);
  const shown = displayName(rel);
  const segments = rel.toString('latin1').split('/').map((s) => Buffer.from(s, 'latin1'));
  const name = segments.pop()!;
  let cur: Buffer = Buffer.from(root);
  for (const seg of segments) {
    const next = join(cur, seg);
    const st = await lstatOrNull(next);
    if (!st) {
      if (!createDirs) return null;
      await fs.mkdir(next, { mode: 0o755 });
      cur = next;
    } else if (st.isSymbolicLink()) {
      const real = await fs.realpath(next);
      if (!isInside(root, real)) throw new UnsafePathError(`Refused ${shown}: the host folder ${displayName(next)} is a symlink that leaves the workspace.`);
      if (!(await fs.stat(real)).isDirectory()) throw new UnsafePathError(`Refused ${shown}: ${displayName(next)} is not a folder on the host.`);
      cur = Buffer.from(real);
    } else if (st.isDirectory()) {
      cur = next;
    } else {
      throw new UnsafePathError(`Refused ${shown}: ${displayName(next)} is a file on the host, not a folder.`);
    }
  }
  const target = join(cur, name);
  const st = await lstatOrNull(target);
  if (st?.isSymbolicLink() && !finalLinkOk) {
    const real = await fs.realpath(target).catch(() => null);
    if (!real || !isInside(root, real)) throw new UnsafePathError(`Refused ${shown}: on the host it is a symlink whose target is outside the workspace.`);
  }
  const rootB = Buffer.from(root);
  const realRel = cur.equals(rootB) ? name : Buffer.concat([cur.subarray(rootB.length + 1), SEP, name]);
  if (isGitInternal(realRel)) throw new UnsafePathError(`Refused ${shown}: on the host it would land in ${displayName(realRel)}, inside .git.`);
  return { root, dir: cur, name, target, realRel };
}

/** The host's bytes and mode for a change's path (null when absent or not a regular file), read through resolveInside. */
export async function readHostEntry(workspace: string, rel: Buffer): Promise<{ data: Buffer; mode: number } | null> {
  const r = await resolveInside(workspace, rel, false);
  if (!r) return null;
  const st = await lstatOrNull(r.target);
  if (!st) return null;
  const file = st.isSymbolicLink() ? await fs.stat(r.target) : st;
  return file.isFile() ? { data: await fs.readFile(r.target), mode: file.mode & 0o7777 } : null;
}

/** The host file's mode and size without reading it (null when absent or not a regular file). */
export async function hostStat(workspace: string, rel: Buffer): Promise<{ mode: number; size: number } | null> {
  try {
    const r = await resolveInside(workspace, rel, false);
    if (!r) return null;
    const st = await fs.stat(r.target);
    return st.isFile() ? { mode: st.mode & 0o7777, size: st.size } : null;
  } catch {
    return null;
  }
}

/** The host file's mtime (ms), 0 when it is missing, -1 when its path cannot be resolved safely. */
export async function hostMtime(workspace: string, rel: Buffer): Promise<number> {
  try {
    const r = await resolveInside(workspace, rel, false);
    return r ? ((await lstatOrNull(r.target))?.mtimeMs ?? 0) : 0;
  } catch {
    return -1;
  }
}

export async function readHostFile(workspace: string, rel: Buffer): Promise<Buffer | null> {
  return (await readHostEntry(workspace, rel))?.data ?? null;
}

/**
 * Writes a temporary file in the target's folder (O_EXCL | O_NOFOLLOW, owner-only until done),
 * lets `fill` write and check it, sets the mode, syncs and renames it over the target. Any
 * failure (a full disk, a hash mismatch) removes the temporary file and leaves the old one.
 */
async function writeAtomic(r: Resolved, mode: number, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = join(r.dir, Buffer.concat([Buffer.from('.'), r.name.subarray(0, 100), Buffer.from(`.cowork-${randomBytes(4).toString('hex')}`)]));
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      await fill(fh);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, r.target);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Where a symlink created by the agent points, as a path relative to its folder, if inside (lexical check only; see symlinks.ts). */
export function symlinkTargetInside(rel: Buffer, target: Buffer): string {
  const t = parseLinkTarget(rel, target);
  const depth = rel.toString('latin1').split('/').length - 1;
  if (t.up > depth) throw new UnsafePathError(`Refused the symlink ${displayName(rel)}: it points to ${displayName(target)}, outside the workspace.`);
  return t.absolute ? Buffer.from([...Array<string>(depth).fill('..'), ...t.names].join('/') || '.', 'latin1').toString('utf8') : target.toString('utf8');
}

/** The bytes of a link as written in its real folder: the agent's own target, or (absolute under /workspace) the same place relative to the folder. */
function linkBytes(change: Change, r: Resolved): Buffer {
  const target = change.target ?? Buffer.alloc(0);
  const t = parseLinkTarget(change.path, target);
  const depth = r.realRel.filter((b) => b === 0x2f).length;
  if (t.up > depth) throw new UnsafePathError(`Refused the symlink ${displayName(change.path)}: from its real folder it points to ${displayName(target)}, outside the workspace.`);
  if (!t.absolute) return target;
  return Buffer.from([...Array<string>(depth).fill('..'), ...t.names].join('/') || '.', 'latin1');
}

export type ConflictChoice = 'overwrite' | 'keep-both' | 'skip';

export interface ApplyOptions {
  readonly workspace: string;
  /** the agent's version of a file, whole (files up to REVIEW_MAX_FILE_BYTES) */
  readonly readProposed: (rel: Buffer) => Promise<Buffer>;
  /** streams the agent's version into `fh` (files above REVIEW_MAX_FILE_BYTES); without it they are refused */
  readonly streamProposed?: (rel: Buffer, fh: FileHandle) => Promise<{ sha256: string; size: number }>;
  /** host files changed after this time (ms) count as conflicts */
  readonly since: number;
  readonly onConflict?: (change: Change) => Promise<ConflictChoice>;
  /** base64 paths of the "runs on your machine" changes the person confirmed by name */
  readonly confirmed?: ReadonlySet<string>;
  /**
   * The bytes come from Cowork, not the scan: a merge of hunks of a proposed version whose hash
   * the caller checked, or the person's own saved version (revert). No scan hash applies.
   */
  readonly ownBytes?: boolean;
  /** the change set link targets and folders are resolved against (default: this change alone) */
  readonly tree?: VirtualTree;
  readonly umask?: number;
}

export type RefusalCode = 'unsafe' | 'runs-on-host' | 'stale' | 'failed';

export type ApplyResult =
  | { readonly change: Change; readonly outcome: 'applied' | 'kept-both' | 'skipped'; readonly sha256?: string }
  | { readonly change: Change; readonly outcome: 'refused'; readonly reason: string; readonly code: RefusalCode };

/** True when the host's file changed after the task started (the agent's version may lose that edit). */
export async function isConflicted(workspace: string, change: Change, since: number): Promise<boolean> {
  let r: Resolved | null;
  try {
    r = await resolveInside(workspace, change.path, false);
  } catch {
    return false;
  }
  if (!r) return false;
  const st = await lstatOrNull(r.target);
  if (!st) return false;
  return change.kind === 'added' ? true : st.mtimeMs > since;
}

export interface Assessment {
  /** why it must not be written at all */
  readonly refused?: string;
  /** why it runs on the host (needs the person's confirmation by name) */
  readonly risk?: string;
}

/**
 * What a change would do on the host, before anything is written: refused (leaves the workspace
 * or enters .git through some mix of symlinks; a link whose target does) or "runs on your
 * machine" (by its path, by where its path really lands, or a file gaining an execute bit).
 */
export async function assess(workspace: string, change: Change, tree: VirtualTree): Promise<Assessment> {
  if (isGitInternal(change.path)) return { refused: `Refused ${change.display}: changes inside .git stay in the VM.` };
  try {
    checkRelative(change.path);
    const dests = await tree.destinations(change.path);
    const ends = change.kind === 'symlink' ? await tree.checkLink(change.path, change.target ?? Buffer.alloc(0)) : [];
    if (change.kind === 'deleted') return {};
    const host = await hostStat(workspace, change.path);
    const risk = hostRisk(change, host?.mode) ?? dests.map((d) => riskOfPath(d)).find((x) => x !== undefined) ?? (await linkToExecutable(workspace, ends, tree));
    return risk ? { risk } : {};
  } catch (err) {
    return { refused: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * A new link to an executable file makes a new path that runs it (".venv/bin/python ->
 * ../../scripts/x.sh", which an editor or a tool runs on its own): as risky as a file gaining an
 * execute bit. The target counts as executable in the change set or on the host.
 */
async function linkToExecutable(workspace: string, ends: readonly Buffer[], tree: VirtualTree): Promise<string | undefined> {
  for (const end of ends) {
    const agent = tree.changeAt(end.toString('latin1').split('/'));
    const mode = agent && agent.kind !== 'deleted' && agent.kind !== 'symlink' ? agent.mode : (await hostStat(workspace, end))?.mode;
    if (mode !== undefined && (mode & 0o111) !== 0) return `a link to the executable ${displayName(end)}`;
  }
  return undefined;
}

function fail(change: Change, code: RefusalCode, reason: string): ApplyResult {
  return { change, outcome: 'refused', code, reason };
}

export async function applyChange(change: Change, o: ApplyOptions, assessed?: Assessment): Promise<ApplyResult> {
  const a = assessed ?? (await assess(o.workspace, change, o.tree ?? new VirtualTree(o.workspace, [change])));
  if (a.refused) return fail(change, 'unsafe', a.refused);
  if (a.risk && !o.confirmed?.has(change.path.toString('base64'))) return fail(change, 'runs-on-host', `${change.display} runs on your machine (${a.risk}): it is written only when you confirm it by name.`);
  try {
    const r = await resolveInside(o.workspace, change.path, change.kind !== 'deleted', change.kind === 'deleted');
    if (change.kind === 'deleted') {
      if (!r) return { change, outcome: 'applied' };
      const st = await lstatOrNull(r.target);
      if (st?.isDirectory()) return fail(change, 'unsafe', `Refused deleting ${change.display}: on the host it is a folder.`);
      if (st) await fs.unlink(r.target); // a symlink is removed itself, never followed
      return { change, outcome: 'applied' };
    }
    if (!r) return fail(change, 'failed', 'its folder could not be created');
    // where the path really lands may run code even when its name does not say so (a folder link)
    const realRisk = riskOfPath(r.realRel);
    if (realRisk && !o.confirmed?.has(change.path.toString('base64'))) return fail(change, 'runs-on-host', `${change.display} lands in ${displayName(r.realRel)}, which runs on your machine (${realRisk}): it is written only when you confirm it by name.`);
    let target = r;
    if (o.onConflict && (await isConflicted(o.workspace, change, o.since))) {
      const choice = await o.onConflict(change);
      if (choice === 'skip') return { change, outcome: 'skipped' };
      if (choice === 'keep-both') target = { ...r, name: Buffer.concat([r.name, Buffer.from('.cowork-proposed')]), target: Buffer.concat([r.target, Buffer.from('.cowork-proposed')]), realRel: Buffer.concat([r.realRel, Buffer.from('.cowork-proposed')]) };
    }
    const outcome = target === r ? 'applied' : 'kept-both';
    if (change.kind === 'symlink') {
      const tmp = join(target.dir, Buffer.from(`.cowork-link-${randomBytes(4).toString('hex')}`));
      await fs.symlink(linkBytes(change, target), tmp);
      await fs.rename(tmp, target.target).catch(async (err: unknown) => {
        await fs.rm(tmp, { force: true });
        throw err;
      });
      return { change, outcome };
    }
    const mode = hostMode(change.mode, o.umask ?? currentUmask());
    const expected = change.sha256;
    if (!o.ownBytes && !expected) return fail(change, 'stale', `${change.display} was listed without a hash: ${STALE_MESSAGE}.`);
    let written: string | undefined;
    if ((change.size ?? 0) > REVIEW_MAX_FILE_BYTES && !o.ownBytes) {
      const stream = o.streamProposed;
      if (!stream) return fail(change, 'failed', `${change.display} is larger than ${REVIEW_MAX_FILE_BYTES / 1024 / 1024} MiB and can only be streamed.`);
      await writeAtomic(target, mode, async (fh) => {
        const got = await stream(change.path, fh);
        if (got.sha256 !== expected) throw new ChangedSinceReviewError(change.display);
        written = got.sha256;
      });
    } else {
      const data = await o.readProposed(change.path);
      written = sha256(data);
      if (!o.ownBytes && written !== expected) throw new ChangedSinceReviewError(change.display);
      await writeAtomic(target, mode, (fh) => fh.writeFile(data));
    }
    return { change, outcome, sha256: written };
  } catch (err) {
    if (err instanceof ChangedSinceReviewError) return fail(change, 'stale', err.message);
    if (err instanceof UnsafePathError || err instanceof UnsafeLinkError) return fail(change, 'unsafe', err.message);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return fail(change, 'failed', `no space left on the disk: ${change.display} was not written and your file is unchanged.`);
    return fail(change, 'failed', err instanceof Error ? err.message : String(err));
  }
}

export interface RiskyChange {
  readonly change: Change;
  readonly reason: string;
}

export interface BatchOptions extends Omit<ApplyOptions, 'confirmed' | 'tree'> {
  /** per change: host edits after this time make it a conflict (default: since) */
  readonly sinceOf?: (change: Change) => number;
  /** the task's whole change set: symlinks are resolved against it (default: the batch) */
  readonly changeSet?: readonly Change[];
  /**
   * Asked once with every "runs on your machine" change of the batch (by name); returns the ones
   * the person confirmed. Without it none is written (direct mode: they wait as proposed changes).
   */
  readonly confirmRisky?: (risky: readonly RiskyChange[]) => Promise<readonly Change[]>;
}

/**
 * Accepts a batch (Accept All, a selection, direct mode): every change is assessed against the
 * whole change set first, the risky ones are confirmed together by name, then each is written.
 */
export async function acceptChanges(batch: readonly Change[], o: BatchOptions): Promise<ApplyResult[]> {
  const tree = new VirtualTree(o.workspace, o.changeSet ?? batch);
  const assessed = new Map<Change, Assessment>();
  for (const c of batch) assessed.set(c, await assess(o.workspace, c, tree));
  const risky = batch.filter((c) => !assessed.get(c)!.refused && assessed.get(c)!.risk).map((c) => ({ change: c, reason: assessed.get(c)!.risk! }));
  const confirmed = new Set<string>();
  if (risky.length && o.confirmRisky) for (const c of await o.confirmRisky(risky)) confirmed.add(c.path.toString('base64'));
  const results: ApplyResult[] = [];
  for (const c of batch) results.push(await applyChange(c, { ...o, since: o.sinceOf?.(c) ?? o.since, tree, confirmed }, assessed.get(c)));
  return results;
}
