// Reads many proposed files from the upper dir in one command: the guest writes, per file, an
// 8-byte big-endian length (all ones for "missing") followed by the bytes. One round trip instead
// of one per file, which is what makes accepting a thousand small files quick.
import type { GuestVm } from '../guest/guestVm';
import { checkRelative, UPPER_DIR } from './changeSet';

const READER = String.raw`
import os, sys, struct
out = sys.stdout.buffer
for line in sys.stdin.buffer.read().split(b"\0"):
    if not line:
        continue
    try:
        with open(os.path.join(b"${UPPER_DIR}", line), "rb") as f:
            data = f.read()
        out.write(struct.pack(">Q", len(data))); out.write(data)
    except OSError:
        out.write(struct.pack(">Q", 2**64 - 1))
out.flush()
`;

export const BATCH_MAX_BYTES = 64 * 1024 * 1024;

/** Reads the files in order; a missing one maps to undefined. */
export async function readProposedBatch(vm: GuestVm, rels: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
  for (const rel of rels) checkRelative(rel);
  const r = await vm.exec(['/usr/bin/python3', '-I', '-c', READER], { stdin: Buffer.concat(rels.flatMap((rel) => [rel, Buffer.from([0])])), timeoutMs: 600_000, maxOutputBytes: 2 * 1024 * 1024 * 1024 });
  if (r.code !== 0) throw new Error(`Reading the proposed files failed: ${r.stderr.toString().slice(-500)}`);
  const out: (Buffer | undefined)[] = [];
  let at = 0;
  for (let i = 0; i < rels.length; i++) {
    if (at + 8 > r.stdout.length) throw new Error('The guest returned fewer files than asked for.');
    const len = r.stdout.readBigUInt64BE(at);
    at += 8;
    if (len === 2n ** 64n - 1n) {
      out.push(undefined);
      continue;
    }
    const n = Number(len);
    out.push(r.stdout.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Reads the agent's version of one changed file from the upper dir (as root, not through the sandbox). */
export async function readProposed(vm: GuestVm, rel: Buffer): Promise<Buffer> {
  const [data] = await readProposedBatch(vm, [rel]);
  if (!data) throw new Error(`Cannot read the proposed ${rel.toString()}: it is no longer in the change set.`);
  return data;
}

/** Prefetches the proposed files of `changes` in batches of at most BATCH_MAX_BYTES (by reported size). */
export async function prefetch(vm: GuestVm, items: readonly { path: Buffer; size?: number }[]): Promise<Map<string, Buffer>> {
  const cache = new Map<string, Buffer>();
  let batch: Buffer[] = [];
  let bytes = 0;
  const flush = async (): Promise<void> => {
    if (!batch.length) return;
    const got = await readProposedBatch(vm, batch);
    batch.forEach((rel, i) => got[i] && cache.set(rel.toString('base64'), got[i]));
    batch = [];
    bytes = 0;
  };
  for (const it of items) {
    if (bytes + (it.size ?? 0) > BATCH_MAX_BYTES) await flush();
    batch.push(it.path);
    bytes += it.size ?? 0;
  }
  await flush();
  return cache;
}
