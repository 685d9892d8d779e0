// cowork.network.extraCaCertificates: PEM files on the host whose certificates the guest trusts on
// top of Debian's bundle. Networks that inspect TLS (a corporate proxy re-signing every site with its
// own root CA) make npm, pip, curl and git in the guest fail with certificate errors otherwise.
//
// Read and checked here, on the host, in full before anything starts: every file readable and not
// too large, every PEM block an X.509 certificate (a private key pasted into the file is refused, not
// carried into the guest). What the guest gets is data, the certificates re-encoded by node:crypto
// (nothing else of the files: no comments, no other blocks), never a host path it could resolve.
import { createHash, X509Certificate } from 'node:crypto';
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Largest file read, and the largest bundle sent to the guest (a full system bundle is ~220 KB). */
export const EXTRA_CA_MAX_BYTES = 1024 * 1024;
export const EXTRA_CA_MAX_FILES = 16;
export const EXTRA_CA_SETTING = 'cowork.network.extraCaCertificates';

export interface ExtraCa {
  /** the certificates, PEM, one after the other, no duplicates */
  readonly pem: string;
  readonly count: number;
  /** of pem: what a warm VM's bundle is compared by */
  readonly sha256: string;
}

export type ExtraCaResult = { readonly ok: true; readonly ca: ExtraCa | undefined } | { readonly ok: false; readonly problems: string[] };

const WHAT_TO_DO = 'point the setting at a PEM file holding your network\'s root CA certificate (your IT department has it; or export it from the system\'s certificate store), or remove the entry';
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** The certificates of the listed files, or one problem per bad file (naming it and what to do). */
export function readExtraCa(paths: readonly string[]): ExtraCaResult {
  if (paths.length === 0) return { ok: true, ca: undefined };
  const problems: string[] = [];
  const certs = new Map<string, string>(); // fingerprint → PEM
  for (const entry of paths) {
    const file = entry.startsWith('~/') ? path.join(os.homedir(), entry.slice(2)) : entry;
    if (!path.isAbsolute(file)) {
      problems.push(`"${entry}" is not an absolute path: ${WHAT_TO_DO}`);
      continue;
    }
    let text: string;
    try {
      text = readSmallFile(file);
    } catch (err) {
      problems.push(`${file} cannot be read (${err instanceof Error ? err.message : String(err)}): ${WHAT_TO_DO}`);
      continue;
    }
    const blocks = [...text.matchAll(PEM_BLOCK)];
    if (blocks.length === 0) {
      problems.push(`${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"); a DER (binary) file can be converted with \`openssl x509 -inform der -in FILE -out FILE.pem\`; else ${WHAT_TO_DO}`);
      continue;
    }
    const bad = blocks.findIndex((b) => b[1] !== 'CERTIFICATE');
    if (bad >= 0) {
      problems.push(`${file} holds a "${blocks[bad]![1]}" block (block ${bad + 1}); only certificates belong in it (nothing else of the file reaches the guest, and a key must not): ${WHAT_TO_DO}`);
      continue;
    }
    for (const [i, b] of blocks.entries()) {
      try {
        const cert = new X509Certificate(b[0]);
        certs.set(cert.fingerprint256, cert.toString());
      } catch (err) {
        problems.push(`${file}: certificate ${i + 1} of ${blocks.length} does not parse as X.509 (${err instanceof Error ? err.message : String(err)}): ${WHAT_TO_DO}`);
        break;
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  const pem = [...certs.values()].map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
  if (pem.length > EXTRA_CA_MAX_BYTES) return { ok: false, problems: [`the listed files hold ${certs.size} certificates, ${pem.length} bytes, more than ${EXTRA_CA_MAX_BYTES}: list only the CA your network needs`] };
  return { ok: true, ca: { pem, count: certs.size, sha256: createHash('sha256').update(pem).digest('hex') } };
}

/** readExtraCa for a VM start: a bad file throws (naming the setting), so nothing boots half-applied. */
export function loadExtraCa(paths: readonly string[]): ExtraCa | undefined {
  const r = readExtraCa(paths);
  if (!r.ok) throw new Error(`${EXTRA_CA_SETTING}: ${r.problems.join('; ')}`);
  return r.ca;
}

function readSmallFile(file: string): string {
  // O_NONBLOCK: opening a FIFO named here must not block the extension host (settings are read
  // on every panel update); fstat below then refuses anything but a regular file
  const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > EXTRA_CA_MAX_BYTES) throw new Error(`${st.size} bytes, more than ${EXTRA_CA_MAX_BYTES}`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < st.size) {
      const got = readSync(fd, buf, n, st.size - n, null);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n).toString('latin1');
  } finally {
    closeSync(fd);
  }
}
