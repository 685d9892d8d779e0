// A workspace's guest setup: `.cowork/guest.json` declares extra Debian packages and an optional
// setup script (run as root once, when the derived image layer is built; never at task time).
// The file comes from the repository, so it is untrusted: it is validated here (zod; Debian's name
// grammar, size limits, no unknown keys) and applied only after the person consented to exactly
// this content (guestConsent.ts). The machine-scoped setting cowork.guest.extraPackages adds
// packages for every workspace and needs no consent (the person set it). No `vscode` here.
import { createHash } from 'node:crypto';
import { lstat, open } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { DebianPackageName, GUEST_LAYER_LIMITS, GuestLayerSpec } from '../protocol/vmHost';

export const GUEST_SETUP_FILE = path.join('.cowork', 'guest.json');
/** the file itself (JSON with a script of at most GUEST_LAYER_LIMITS.setupBytes inside) */
export const GUEST_SETUP_MAX_FILE_BYTES = 64 * 1024;

export const GuestSetupFile = z
  .object({
    $schema: z.string().optional(),
    $comment: z.string().optional(),
    packages: z
      .array(DebianPackageName)
      .max(GUEST_LAYER_LIMITS.packages, `at most ${GUEST_LAYER_LIMITS.packages} packages`)
      .default([])
      .describe('extra Debian packages from the image\'s suite (bookworm), e.g. ["cowsay"]'),
    setup: GuestLayerSpec.shape.setup.describe('a shell script run as root when the layer is built (not when a task runs)'),
  })
  .strict();

export type GuestSetupRead =
  | { readonly kind: 'none' }
  | { readonly kind: 'ok'; readonly spec: GuestLayerSpec }
  | { readonly kind: 'invalid'; readonly message: string };

/** Parses the file's text; the message names the file and each problem's place. */
export function parseGuestSetup(text: string): GuestSetupRead {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { kind: 'invalid', message: `${GUEST_SETUP_FILE} is not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  const parsed = GuestSetupFile.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const at = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
      const value = valueAt(json, i.path);
      return `${at}${typeof value === 'string' ? ` ${JSON.stringify(value.slice(0, 60))}` : ''}: ${i.message}`;
    });
    return { kind: 'invalid', message: `${GUEST_SETUP_FILE} is refused: ${problems.join('; ')}` };
  }
  const { packages, setup } = parsed.data;
  return { kind: 'ok', spec: canonical({ packages, setup }) };
}

/** Reads <workspace>/.cowork/guest.json: a regular file (not a link), at most GUEST_SETUP_MAX_FILE_BYTES. */
export async function readGuestSetup(workspace: string): Promise<GuestSetupRead> {
  const file = path.join(workspace, GUEST_SETUP_FILE);
  let st;
  try {
    st = await lstat(file);
  } catch {
    return { kind: 'none' };
  }
  if (!st.isFile()) return { kind: 'invalid', message: `${GUEST_SETUP_FILE} must be a regular file (not a link or a folder).` };
  if (st.size > GUEST_SETUP_MAX_FILE_BYTES) return { kind: 'invalid', message: `${GUEST_SETUP_FILE} is ${st.size} bytes; at most ${GUEST_SETUP_MAX_FILE_BYTES} are read.` };
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(GUEST_SETUP_MAX_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > GUEST_SETUP_MAX_FILE_BYTES) return { kind: 'invalid', message: `${GUEST_SETUP_FILE} is larger than ${GUEST_SETUP_MAX_FILE_BYTES} bytes.` };
    return parseGuestSetup(buf.subarray(0, bytesRead).toString('utf8'));
  } finally {
    await fh.close();
  }
}

/** Sorted, de-duplicated packages; a blank script is no script. */
export function canonical(spec: GuestLayerSpec): GuestLayerSpec {
  const packages = [...new Set(spec.packages)].sort();
  return spec.setup?.trim() ? { packages, setup: spec.setup } : { packages };
}

/** The hash consent is given to: the canonical spec (so reformatting the file does not ask again). */
export function guestSetupHash(spec: GuestLayerSpec): string {
  return createHash('sha256').update(JSON.stringify(canonical(spec))).digest('hex');
}

/** The workspace's consented spec plus the machine's extra packages; undefined when there is nothing to add. */
export function combineLayer(workspace: GuestLayerSpec | undefined, extraPackages: readonly string[]): GuestLayerSpec | undefined {
  const spec = canonical({ packages: [...(workspace?.packages ?? []), ...extraPackages], setup: workspace?.setup });
  if (spec.packages.length === 0 && !spec.setup) return undefined;
  return GuestLayerSpec.parse(spec); // the combined list is held to the same limits
}

function valueAt(json: unknown, at: readonly PropertyKey[]): unknown {
  let v = json;
  for (const k of at) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}
