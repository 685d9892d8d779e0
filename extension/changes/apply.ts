// Writes accepted changes into the host workspace, and nowhere else. Every path is resolved one
// component at a time from the workspace's real path: a host-side symlink is followed only when
// its target stays inside the workspace, a final component that is a symlink leaving it is
// refused, and a file is written to a temporary name in its folder, synced and renamed over the
// old one (atomic per file, mode preserved). A symlink the agent made is accepted only when it
// points inside the workspace.
import { randomBytes } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { checkRelative, type Change } from './changeSet';

export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
}

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

export interface Resolved {
  /** real path of the containing folder */
  readonly dir: Buffer;
  readonly name: Buffer;
  readonly target: Buffer;
}

/** Resolves a change's path inside the workspace; creates missing folders when asked. */
export async function resolveInside(workspace: string, rel: Buffer, createDirs: boolean): Promise<Resolved | null> {
  checkRelative(rel);
  const root = await fs.realpath(workspace);
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
      if (!isInside(root, real)) throw new UnsafePathError(`Refused ${rel.toString()}: the host folder ${next.toString()} is a symlink that leaves the workspace.`);
      if (!(await fs.stat(real)).isDirectory()) throw new UnsafePathError(`Refused ${rel.toString()}: ${next.toString()} is not a folder on the host.`);
      cur = Buffer.from(real);
    } else if (st.isDirectory()) {
      cur = next;
    } else {
      throw new UnsafePathError(`Refused ${rel.toString()}: ${next.toString()} is a file on the host, not a folder.`);
    }
  }
  const target = join(cur, name);
  const st = await lstatOrNull(target);
  if (st?.isSymbolicLink()) {
    const real = await fs.realpath(target).catch(() => null);
    if (!real || !isInside(root, real)) throw new UnsafePathError(`Refused ${rel.toString()}: on the host it is a symlink whose target is outside the workspace.`);
  }
  return { dir: cur, name, target };
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

async function writeAtomic(r: Resolved, data: Buffer, mode: number): Promise<void> {
  const tmp = join(r.dir, Buffer.concat([Buffer.from('.'), r.name.subarray(0, 100), Buffer.from(`.cowork-${randomBytes(4).toString('hex')}`)]));
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode & 0o7777);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode & 0o7777);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.rename(tmp, r.target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** Where a symlink created by the agent points, as a path relative to its folder, if inside. */
export function symlinkTargetInside(rel: Buffer, target: Buffer): string {
  let t = target.toString('utf8');
  if (t.startsWith('/workspace/') || t === '/workspace') t = path.posix.relative(path.posix.dirname(`/workspace/${rel.toString('utf8')}`), t) || '.';
  if (path.posix.isAbsolute(t)) throw new UnsafePathError(`Refused the symlink ${rel.toString()}: it points to ${t}, outside the workspace.`);
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel.toString('utf8')), t));
  if (resolved === '..' || resolved.startsWith('../')) throw new UnsafePathError(`Refused the symlink ${rel.toString()}: it points to ${t}, outside the workspace.`);
  return t;
}

export type ConflictChoice = 'overwrite' | 'keep-both' | 'skip';

export interface ApplyOptions {
  readonly workspace: string;
  readonly readProposed: (rel: Buffer) => Promise<Buffer>;
  /** host files changed after this time (ms) count as conflicts */
  readonly since: number;
  readonly onConflict?: (change: Change) => Promise<ConflictChoice>;
}

export type ApplyResult = { readonly change: Change; readonly outcome: 'applied' | 'kept-both' | 'skipped' } | { readonly change: Change; readonly outcome: 'refused'; readonly reason: string };

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

export async function applyChange(change: Change, o: ApplyOptions): Promise<ApplyResult> {
  try {
    const r = await resolveInside(o.workspace, change.path, change.kind !== 'deleted');
    if (change.kind === 'deleted') {
      if (r) await fs.rm(r.target, { force: true });
      return { change, outcome: 'applied' };
    }
    if (!r) return { change, outcome: 'refused', reason: 'its folder could not be created' };
    let target = r;
    if (o.onConflict && (await isConflicted(o.workspace, change, o.since))) {
      const choice = await o.onConflict(change);
      if (choice === 'skip') return { change, outcome: 'skipped' };
      if (choice === 'keep-both') target = { ...r, name: Buffer.concat([r.name, Buffer.from('.cowork-proposed')]), target: Buffer.concat([r.target, Buffer.from('.cowork-proposed')]) };
    }
    if (change.kind === 'symlink') {
      const linkTarget = symlinkTargetInside(change.path, change.target ?? Buffer.alloc(0));
      const tmp = join(target.dir, Buffer.from(`.cowork-link-${randomBytes(4).toString('hex')}`));
      await fs.symlink(linkTarget, tmp);
      await fs.rename(tmp, target.target);
    } else {
      const data = await o.readProposed(change.path);
      await writeAtomic(target, data, change.mode ?? 0o644);
    }
    return { change, outcome: target === r ? 'applied' : 'kept-both' };
  } catch (err) {
    if (err instanceof UnsafePathError) return { change, outcome: 'refused', reason: err.message };
    return { change, outcome: 'refused', reason: err instanceof Error ? err.message : String(err) };
  }
}
