// Where a workspace's package-cache disk lives (npm's and pip's caches, reused by later tasks of the
// same workspace; vm-host/cacheDisk.ts creates it, cowork-init mounts it at /cache). One file per
// workspace under the extension's global storage, named by a hash of the workspace path: no two
// workspaces ever share one. Its size for the status line and Check Setup; Clean Up removes it
// (the next task creates an empty one). No `vscode` here.
import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import * as path from 'node:path';

export function cacheDiskPath(globalStorageDir: string, workspace: string): string {
  const hash = createHash('sha256').update(path.resolve(workspace)).digest('hex').slice(0, 24);
  return path.join(globalStorageDir, 'caches', `ws-${hash}.qcow2`);
}

/** Bytes the cache disk takes on the host (allocated blocks), 0 when there is none. */
export async function cacheDiskBytes(file: string): Promise<number> {
  const st = await stat(file).catch(() => undefined);
  return st ? st.blocks * 512 : 0;
}

/** Removes the cache disk; the caller makes sure no VM of this workspace runs. Returns the bytes freed. */
export async function clearCacheDisk(file: string): Promise<number> {
  const bytes = await cacheDiskBytes(file);
  await rm(file, { force: true });
  return bytes;
}
