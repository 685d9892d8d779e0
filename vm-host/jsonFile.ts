// Small JSON state files of the helper (accelerator verdicts, boot times): read leniently (a
// missing or unreadable file is the empty default: these are caches), written atomically
// (temp file + rename) so two helpers or a crash never leave half a file.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

export async function readJsonFile<T>(file: string, fallback: T): Promise<T> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    return v && typeof v === 'object' ? (v as T) : fallback;
  } catch {
    return fallback;
  }
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, JSON.stringify(value, null, 2));
  await rename(tmp, file);
}
