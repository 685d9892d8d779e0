// A workspace's package-cache disk (npm's and pip's caches, mounted at /cache in the guest by
// cowork-init). The extension chooses its path (its global storage, keyed by a hash of the
// workspace path, so no two workspaces share one); the helper creates it like a session disk and
// attaches it to the task's VM. Two tasks of one workspace cannot both write one qcow2: QEMU locks
// it, so a start that finds it locked (another task's VM, here or in another window) runs without
// it rather than failing; its packages then come from the network again.
import { stat } from 'node:fs/promises';
import { ensureSessionDisk, run } from './disks';
import { VmHostError } from './errors';

export const DEFAULT_CACHE_DISK_GIB = 8;

export async function ensureCacheDisk(qemuImg: string, file: string, sizeGiB = DEFAULT_CACHE_DISK_GIB): Promise<'created' | 'existing' | 'in-use'> {
  const exists = await stat(file).then(() => true, () => false);
  if (exists) {
    try {
      // without -U: fails when a running QEMU holds the image's write lock
      await run(qemuImg, ['info', '--output=json', file]);
    } catch (err) {
      if (/lock/i.test(String(err))) return 'in-use';
      throw new VmHostError('bad-config', `The package cache disk ${file} cannot be read (${String(err)}); clear it with "Cowork: Clean Up".`, { cause: err });
    }
  }
  return ensureSessionDisk(qemuImg, file, sizeGiB);
}
