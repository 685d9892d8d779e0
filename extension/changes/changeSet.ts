// The task's changes as the guest's overlay holds them (vm-host/guest/…/changes.py scans the upper
// dir as root). Paths are raw bytes (names need not be UTF-8); `display` is for people.
import { z } from 'zod';
import type { GuestVm } from '../guest/guestVm';

export const UPPER_DIR = '/session/upper';

const Raw = z.object({
  changes: z.array(
    z.object({
      path: z.string(),
      kind: z.enum(['added', 'modified', 'deleted', 'symlink', 'mode']),
      type: z.enum(['file', 'symlink', 'dir']),
      size: z.number().optional(),
      sha256: z.string().optional(),
      mode: z.number().optional(),
      target: z.string().optional(),
      existed: z.boolean().optional(),
    }),
  ),
  errors: z.array(z.object({ path: z.string(), message: z.string() })),
});

export interface Change {
  /** path relative to the workspace, raw bytes */
  readonly path: Buffer;
  /** for display (invalid UTF-8 shown with replacement characters) */
  readonly display: string;
  readonly kind: 'added' | 'modified' | 'deleted' | 'symlink' | 'mode';
  readonly size?: number;
  readonly sha256?: string;
  readonly mode?: number;
  /** symlink target, raw bytes */
  readonly target?: Buffer;
  /** for a symlink: whether the path existed on the host side before */
  readonly existed?: boolean;
}

export interface ChangeSet {
  readonly changes: Change[];
  readonly problems: { display: string; message: string }[];
}

export async function readChangeSet(vm: GuestVm): Promise<ChangeSet> {
  const r = await vm.changes({ timeoutMs: 120_000, maxOutputBytes: 64 * 1024 * 1024 });
  if (r.code !== 0) throw new Error(`Reading the change set failed (exit ${r.code ?? r.signal}): ${r.stderr.toString().slice(-1000)}`);
  const raw = Raw.parse(JSON.parse(r.stdout.toString('utf8')));
  const changes = raw.changes.map((c) => {
    const p = Buffer.from(c.path, 'base64');
    return { path: p, display: p.toString('utf8'), kind: c.kind, size: c.size, sha256: c.sha256, mode: c.mode, target: c.target ? Buffer.from(c.target, 'base64') : undefined, existed: c.existed };
  });
  changes.sort((a, b) => Buffer.compare(a.path, b.path));
  return { changes, problems: raw.errors.map((e) => ({ display: Buffer.from(e.path, 'base64').toString('utf8'), message: e.message })) };
}

/** Makes the guest forget a change: the overlay shows the host's version again. */
export async function discardInGuest(vm: GuestVm, rels: readonly Buffer[] | 'all'): Promise<void> {
  if (rels === 'all') {
    const r = await vm.sh(`find ${UPPER_DIR} -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + ; sync; echo 2 > /proc/sys/vm/drop_caches`, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`Discarding failed: ${r.stderr.toString()}`);
    return;
  }
  for (const rel of rels) checkRelative(rel);
  const r = await vm.exec(['/bin/sh', '-c', `rm -rf -- "$@"; sync; echo 2 > /proc/sys/vm/drop_caches`, 'discard', ...rels.map((rel) => Buffer.concat([Buffer.from(`${UPPER_DIR}/`), rel]))], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`Discarding failed: ${r.stderr.toString()}`);
}

/** A change's path must be relative, without "..", "." or empty segments, and without NUL. */
export function checkRelative(rel: Buffer): void {
  if (rel.length === 0 || rel[0] === 0x2f || rel.includes(0)) throw new Error(`Refusing the path "${rel.toString()}": it must be relative to the workspace.`);
  for (const seg of rel.toString('latin1').split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`Refusing the path "${rel.toString()}": "${seg || '//'}" is not allowed in a change's path.`);
  }
}
