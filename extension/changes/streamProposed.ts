// Streams one proposed file from the guest's upper dir into an open host file, a chunk per round
// trip, hashing as it goes: for files above REVIEW_MAX_FILE_BYTES, which review never holds in
// memory whole. Each chunk comes from the guest agent's safe reader (readBatch.ts
// readProposedRange: component by component with O_NOFOLLOW, regular files only), so a folder the
// sandbox swaps for a symlink between two chunks makes the read fail, never read elsewhere. The
// file may change between chunks: the caller compares the hash at the end with the one the person
// saw and throws the temporary file away on a mismatch. Files above the scan's hash cap are hashed
// in the guest the same careful way (hashProposed), so their rows carry a hash too.
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { GuestVm } from '../guest/guestVm';
import { checkRelative, REVIEW_MAX_FILE_BYTES, UPPER_DIR, type Change } from './changeSet';
import { displayName } from './names';
import { readProposedBatch, readProposedRange } from './readBatch';

/** Bytes per round trip: large enough that the ~0.15 s per exec under emulation stays small. */
export const STREAM_CHUNK_BYTES = 8 * 1024 * 1024;

const HASHER = String.raw`
import hashlib, os, stat, sys
rel = sys.stdin.buffer.read()
fd = os.open(b"${UPPER_DIR}", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
parts = rel.split(b"/")
for p in parts[:-1]:
    nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    os.close(fd)
    fd = nfd
f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
if not stat.S_ISREG(os.fstat(f).st_mode):
    sys.stderr.write("not a regular file\n"); sys.exit(3)
h, n = hashlib.sha256(), 0
while True:
    b = os.read(f, 1 << 20)
    if not b:
        break
    h.update(b); n += len(b)
print(h.hexdigest(), n)
`;

/** The sha256 and size of a proposed file, hashed in the guest (nothing crosses to the host but the digest). */
export async function hashProposed(vm: GuestVm, rel: Buffer): Promise<{ sha256: string; size: number }> {
  checkRelative(rel);
  const r = await vm.exec(['/usr/bin/python3', '-I', '-c', HASHER], { stdin: rel, timeoutMs: 600_000, maxOutputBytes: 4096 });
  const m = /^([0-9a-f]{64}) ([0-9]+)\s*$/.exec(r.stdout.toString());
  if (r.code !== 0 || !m) throw new Error(`Hashing the proposed file failed: ${r.stderr.toString().slice(-300)}`);
  return { sha256: m[1]!, size: Number(m[2]) };
}

/**
 * The scan lists files above its hash cap without a hash: hash those in the guest, so that the row
 * shows, and Accept checks, a hash like any other. `cache` (path → "size:sha256") saves hashing
 * an unchanged file again; an entry whose accept was refused as stale must be dropped by the caller.
 */
export async function withHashes(vm: GuestVm, changes: readonly Change[], cache: Map<string, string>): Promise<Change[]> {
  const out: Change[] = [];
  for (const c of changes) {
    if (c.sha256 || c.hashSkipped !== 'too-large' || (c.kind !== 'added' && c.kind !== 'modified' && c.kind !== 'mode')) {
      out.push(c);
      continue;
    }
    const key = c.path.toString('base64');
    const hit = cache.get(key)?.split(':');
    if (hit && Number(hit[0]) === c.size) {
      out.push({ ...c, sha256: hit[1] });
      continue;
    }
    try {
      const h = await hashProposed(vm, c.path);
      cache.set(key, `${h.size}:${h.sha256}`);
      out.push({ ...c, sha256: h.sha256, size: h.size });
    } catch {
      out.push(c); // gone or replaced since the scan: accept refuses it until a scan lists it again
    }
  }
  return out;
}

/** Writes the proposed `rel` into `fh` from offset 0; returns its sha256 and size as written. */
export async function streamProposed(vm: GuestVm, rel: Buffer, fh: FileHandle, chunkBytes = STREAM_CHUNK_BYTES): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let at = 0;
  for (;;) {
    const chunk = await readProposedRange(vm, rel, at, chunkBytes);
    if (!chunk) throw new Error(`${displayName(rel)} is no longer in the change set.`);
    if (chunk.length === 0) break;
    hash.update(chunk);
    let done = 0;
    while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done, at + done)).bytesWritten;
    at += chunk.length;
    if (chunk.length < chunkBytes) break;
  }
  return { sha256: hash.digest('hex'), size: at };
}

/** One proposed file read whole, refused above REVIEW_MAX_FILE_BYTES (it may have grown since the scan). */
export async function readProposedCapped(vm: GuestVm, rel: Buffer): Promise<Buffer> {
  const [data] = await readProposedBatch(vm, [rel], { maxBytes: REVIEW_MAX_FILE_BYTES });
  if (!data) throw new Error(`Cannot read the proposed ${displayName(rel)}: it is no longer in the change set.`);
  return data;
}
