// The task's changes as the guest's overlay holds them (vm-host/guest/…/changes.py scans the upper
// dir as root). Paths are raw bytes (names need not be UTF-8); `display` is for people (names.ts:
// exact bytes, anything misleading escaped). Changes inside a `.git` folder are not offered for
// review at all: they stay in the VM (hostRisk.ts says why).
import { z } from 'zod';
import type { GuestVm } from '../guest/guestVm';
import { isGitInternal } from './hostRisk';
import { displayName } from './names';

export const UPPER_DIR = '/session/upper';

/**
 * The largest proposed file review reads into the host's memory (diff, panel, accept in one
 * piece). Larger files are listed with a placeholder and accepted by streaming them from the
 * guest to a temporary file in chunks, the hash checked at the end (streamProposed.ts).
 */
export const REVIEW_MAX_FILE_BYTES = 50 * 1024 * 1024;

const Raw = z.object({
  changes: z.array(
    z.object({
      path: z.string(),
      kind: z.enum(['added', 'modified', 'deleted', 'symlink', 'mode']),
      type: z.enum(['file', 'symlink', 'dir']),
      size: z.number().optional(),
      sha256: z.string().optional(),
      /** no sha256: the file is above the guest's hash cap, or the scan's time budget ran out (changes.py) */
      hashSkipped: z.enum(['too-large', 'time-budget']).optional(),
      mode: z.number().optional(),
      target: z.string().optional(),
      existed: z.boolean().optional(),
    }),
  ),
  errors: z.array(z.object({ path: z.string(), message: z.string() })),
  /** set when the guest's scan stopped at its budget (entries or time): the rest comes with a later scan */
  incomplete: z.string().nullable().optional(),
});

export interface Change {
  /** path relative to the workspace, raw bytes */
  readonly path: Buffer;
  /** for display: the exact bytes, invalid UTF-8 as \xNN, control and bidi characters as \uXXXX */
  readonly display: string;
  readonly kind: 'added' | 'modified' | 'deleted' | 'symlink' | 'mode';
  /** what the path is (a deletion: what the host had, e.g. 'symlink' for a link the agent replaced by a folder) */
  readonly type?: 'file' | 'symlink' | 'dir';
  readonly size?: number;
  readonly sha256?: string;
  /** why there is no sha256: 'too-large' (over the guest's 50 MiB hash cap) or 'time-budget' (hashed by a later scan) */
  readonly hashSkipped?: 'too-large' | 'time-budget';
  readonly mode?: number;
  /** symlink target, raw bytes */
  readonly target?: Buffer;
  /** for a symlink: whether the path existed on the host side before */
  readonly existed?: boolean;
}

export interface ChangeSet {
  readonly changes: Change[];
  readonly problems: { display: string; message: string }[];
  /** changes inside `.git` folders, kept in the VM and never offered */
  readonly gitInternal: number;
}

export async function readChangeSet(vm: GuestVm): Promise<ChangeSet> {
  const r = await vm.changes({ timeoutMs: 120_000, maxOutputBytes: 64 * 1024 * 1024 });
  if (r.code !== 0) throw new Error(`Reading the change set failed (exit ${r.code ?? r.signal}): ${r.stderr.toString().slice(-1000)}`);
  const raw = Raw.parse(JSON.parse(r.stdout.toString('utf8')));
  const all: Change[] = raw.changes.map((c) => {
    const p = Buffer.from(c.path, 'base64');
    return { path: p, display: displayName(p), kind: c.kind, type: c.type, size: c.size, sha256: c.sha256, hashSkipped: c.hashSkipped, mode: c.mode, target: c.target ? Buffer.from(c.target, 'base64') : undefined, existed: c.existed };
  });
  const changes = all.filter((c) => !isGitInternal(c.path));
  changes.sort((a, b) => Buffer.compare(a.path, b.path));
  return { changes, problems: raw.errors.map((e) => ({ display: displayName(Buffer.from(e.path, 'base64')), message: e.message })), gitInternal: all.length - changes.length };
}

/** A change's kind in words, where the five kinds do not say it (a host symlink the agent replaced by a folder). */
export function changeLabel(change: Change, all: readonly Change[]): string | undefined {
  if (change.kind === 'deleted' && change.type === 'symlink') {
    const prefix = Buffer.concat([change.path, Buffer.from('/')]);
    if (all.some((c) => c.path.length > prefix.length && c.path.subarray(0, prefix.length).equals(prefix))) return 'symlink replaced by a folder';
    return 'symlink deleted';
  }
  return undefined;
}

/**
 * Makes the guest forget a change: the overlay shows the host's version again. The guest agent
 * removes the entries through descriptors of the upper dir (never `rm -rf` of a path string), so a
 * folder on the way that the sandbox made a symlink (to / or /mnt/host) removes nothing outside.
 */
export async function discardInGuest(vm: GuestVm, rels: readonly Buffer[] | 'all'): Promise<void> {
  if (rels !== 'all') for (const rel of rels) checkRelative(rel);
  const r = await vm.discardUpper(rels, { timeoutMs: 120_000 });
  if (r.errors.length) throw new Error(`Discarding failed: ${r.errors.map((e) => `${displayName(Buffer.from(e.path, 'base64'))}: ${e.message}`).join('; ')}`);
}

/**
 * Everything a row shows of a change, as one string: its kind, the hash of the agent's version,
 * a symlink's target and the mode. Accept from the panel sends back the fingerprint of the row the
 * person looked at and is refused when the change is no longer that (the agent turned the file
 * into a link, deleted it, or rewrote it after the row was drawn).
 */
export function changeFingerprint(c: Change): string {
  return [c.kind, c.sha256 ?? '', c.target?.toString('base64') ?? '', c.mode ?? ''].join(':');
}

/** A change's path must be relative, without "..", "." or empty segments, and without NUL. */
export function checkRelative(rel: Buffer): void {
  if (rel.length === 0 || rel[0] === 0x2f || rel.includes(0)) throw new Error(`Refusing the path "${displayName(rel)}": it must be relative to the workspace.`);
  for (const seg of rel.toString('latin1').split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`Refusing the path "${displayName(rel)}": "${seg || '//'}" is not allowed in a change's path.`);
  }
}
