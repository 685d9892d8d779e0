// Turns a compressed kernel (vmlinuz / bzImage) into the uncompressed ELF vmlinux. QEMU boots an
// ELF vmlinux through the PVH entry point, which skips in-guest decompression: ~3 s saved per boot
// under emulation (shared/TESTING.md). Returns undefined when no payload is found, and the caller
// boots the compressed kernel instead.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';

const MAGICS: { name: string; bytes: number[]; decompress: (buf: Buffer) => Promise<Buffer> }[] = [
  { name: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], decompress: (b) => pipeThrough('xz', ['-dc', '--single-stream'], b) },
  { name: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd], decompress: (b) => pipeThrough('zstd', ['-dcq'], b) },
  { name: 'gzip', bytes: [0x1f, 0x8b, 0x08], decompress: gunzipLenient },
];

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export async function extractVmlinux(vmlinuzPath: string, outPath: string): Promise<string | undefined> {
  const image = await readFile(vmlinuzPath);
  for (const magic of MAGICS) {
    const needle = Buffer.from(magic.bytes);
    let at = image.indexOf(needle);
    while (at >= 0) {
      try {
        const out = await magic.decompress(image.subarray(at));
        if (out.subarray(0, 4).equals(ELF_MAGIC)) {
          await writeFile(outPath, out);
          return magic.name;
        }
      } catch {
        // not a real stream at this offset; look further
      }
      at = image.indexOf(needle, at + 1);
    }
  }
  return undefined;
}

function pipeThrough(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.stdin.on('error', () => undefined); // the decompressor may stop reading after the stream ends
    child.on('close', () => {
      // xz/zstd exit non-zero on trailing garbage after a valid stream: judge by the output.
      const out = Buffer.concat(chunks);
      if (out.length > 0) resolve(out);
      else reject(new Error(`${cmd} produced nothing`));
    });
    child.stdin.end(input);
  });
}

/**
 * gunzip that ignores the bytes after the stream (a bzImage carries more after its payload), which
 * node's gunzip treats as a broken second member. Parses the gzip header (RFC 1952) and inflates
 * the raw deflate data, which stops at the end of the stream.
 */
function gunzipLenient(input: Buffer): Promise<Buffer> {
  try {
    const flags = input[3] ?? 0;
    let at = 10;
    if (flags & 0x04) at += 2 + input.readUInt16LE(at); // FEXTRA
    if (flags & 0x08) at = input.indexOf(0, at) + 1; // FNAME
    if (flags & 0x10) at = input.indexOf(0, at) + 1; // FCOMMENT
    if (flags & 0x02) at += 2; // FHCRC
    return Promise.resolve(inflateRawSync(input.subarray(at)));
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
