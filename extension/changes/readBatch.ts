// Reads many proposed files from the upper dir in one request to the guest agent (op "read"): per
// file an 8-byte big-endian length (all ones for "missing") followed by the bytes. One round trip
// instead of one per file, which is what makes accepting a thousand small files quick.
//
// The agent opens each path one component at a time from a descriptor of the upper dir (folders
// O_DIRECTORY|O_NOFOLLOW, the file O_NOFOLLOW|O_NONBLOCK, then checked to be a regular file), with
// the sandbox user's file-system identity: a folder the sandbox swaps for a symlink to /etc/ssh or
// fw_cfg makes the read fail, never read there (vm-host/guest/…/upperfs.py).
import type { GuestVm } from '../guest/guestVm';
import { UPPER_MISSING, UPPER_TOO_LARGE } from '../guest/guestAgent';
import { checkRelative, REVIEW_MAX_FILE_BYTES } from './changeSet';

export const BATCH_MAX_BYTES = 64 * 1024 * 1024;
const READ_TIMEOUT_MS = 600_000;

/** Reads the files in order; a missing one (or one that is not a regular file) maps to undefined. */
export async function readProposedBatch(vm: GuestVm, rels: readonly Buffer[], opts: { maxBytes?: number; skipTooLarge?: boolean } = {}): Promise<(Buffer | undefined)[]> {
  for (const rel of rels) checkRelative(rel);
  const r = await vm.readUpper(rels, { timeoutMs: READ_TIMEOUT_MS, maxBytes: opts.maxBytes });
  const out: (Buffer | undefined)[] = [];
  let at = 0;
  for (let i = 0; i < rels.length; i++) {
    if (at + 8 > r.stdout.length) throw new Error('The guest returned fewer files than asked for.');
    const len = r.stdout.readBigUInt64BE(at);
    at += 8;
    if (len === UPPER_MISSING) {
      out.push(undefined);
      continue;
    }
    if (len === UPPER_TOO_LARGE && opts.skipTooLarge) {
      out.push(undefined);
      continue;
    }
    if (len === UPPER_TOO_LARGE) throw new Error(`${rels[i]!.toString()} is larger than ${opts.maxBytes ?? 0} bytes: read it in ranges (readProposedRange).`);
    const n = Number(len);
    if (at + n > r.stdout.length) throw new Error('The guest returned fewer bytes than it announced.');
    out.push(r.stdout.subarray(at, at + n));
    at += n;
  }
  return out;
}

/**
 * `length` bytes of a proposed file from `offset` (fewer at its end), read the same safe way: for
 * streaming a file too large to hold whole. Undefined when the file is missing or not regular.
 */
export async function readProposedRange(vm: GuestVm, rel: Buffer, offset: number, length: number): Promise<Buffer | undefined> {
  checkRelative(rel);
  const r = await vm.readUpper([rel], { timeoutMs: READ_TIMEOUT_MS, offset, length, maxOutputBytes: length + 8 });
  if (r.stdout.length < 8) throw new Error('The guest returned no answer for the range.');
  const len = r.stdout.readBigUInt64BE(0);
  if (len === UPPER_MISSING) return undefined;
  return r.stdout.subarray(8, 8 + Number(len));
}

/** Reads the agent's version of one changed file from the upper dir (by the guest agent, not through the sandbox). */
export async function readProposed(vm: GuestVm, rel: Buffer): Promise<Buffer> {
  // capped: a file listed small may have grown since the scan (a running command)
  const [data] = await readProposedBatch(vm, [rel], { maxBytes: REVIEW_MAX_FILE_BYTES });
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
    const got = await readProposedBatch(vm, batch, { maxBytes: REVIEW_MAX_FILE_BYTES, skipTooLarge: true });
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
