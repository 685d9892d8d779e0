// Session disks: one qcow2 per task, holding the overlay's upper dir (the agent's changes). They
// outlive the VM on purpose (a crash loses no change) and are removed with their task.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { VmHostError } from './errors';

export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function ensureSessionDisk(qemuImg: string, file: string, sizeGiB: number): Promise<'created' | 'existing'> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new VmHostError('bad-config', `The session disk ${file} is not a file.`);
    const info = JSON.parse(await run(qemuImg, ['info', '--output=json', '-U', file])) as { format?: string };
    if (info.format !== 'qcow2') throw new VmHostError('bad-config', `The session disk ${file} is ${info.format ?? 'unknown'}, not qcow2; remove it with "Cowork: Clean Up".`);
    return 'existing';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true });
  await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', file, `${sizeGiB}G`]);
  return 'created';
}

/** Removes *.qcow2 files in dir that are not in keep (names without directory). */
export async function cleanupDisks(dir: string, keep: readonly string[]): Promise<{ removed: string[]; freedBytes: number }> {
  const removed: string[] = [];
  let freedBytes = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { removed, freedBytes };
  }
  const keepSet = new Set(keep);
  for (const name of names) {
    if (!name.endsWith('.qcow2') || keepSet.has(name)) continue;
    const file = path.join(dir, name);
    const st = await stat(file);
    await rm(file, { force: true });
    removed.push(name);
    freedBytes += st.blocks * 512;
  }
  return { removed, freedBytes };
}
