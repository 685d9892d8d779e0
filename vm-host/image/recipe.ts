// The guest image recipe and its cache keys. The image has two layers with separate keys:
//  - base: kernel + modules + squashfs root from Debian packages (slow: minutes), keyed by the
//    package list, suite, mirror, architecture and customize.sh;
//  - boot: initramfs with busybox, modules, /init and the Cowork payload (fast: seconds), keyed by
//    the base key plus init, the module list and every file under vm-host/guest/.
// So editing a guest script rebuilds in seconds, and only a package change costs a full build.
import { createHash } from 'node:crypto';
import { readFile, readdir, lstat, readlink } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { VmHostError } from '../errors';

export const GuestArch = z.enum(['amd64', 'arm64']);
export type GuestArch = z.infer<typeof GuestArch>;

const RecipeSchema = z.object({
  suite: z.string().min(1),
  mirror: z.string().url(),
  architectures: z.record(z.string(), z.object({ kernelPackage: z.string(), qemuBinary: z.string() })),
  packages: z.array(z.string().min(1)).min(1),
  /** package → why it is in the image (not part of the cache key) */
  why: z.record(z.string(), z.string().min(1)).default({}),
  /** absolute path → why: the only setuid/setgid files the image may hold ('$…' keys are comments) */
  setuidAllowList: z
    .record(z.string(), z.string())
    .default({})
    .transform((m) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('$')))),
  initramfsModules: z.array(z.string().min(1)),
});
export type Recipe = z.infer<typeof RecipeSchema>;

export interface RecipeSources {
  /** vm-host/image: recipe.json, customize.sh, init */
  readonly imageDir: string;
  /** vm-host/guest: files laid over the guest root at boot */
  readonly guestDir: string;
}

export interface ResolvedRecipe {
  readonly recipe: Recipe;
  readonly arch: GuestArch;
  readonly kernelPackage: string;
  readonly qemuBinary: string;
  readonly baseKey: string;
  readonly bootKey: string;
}

/** Bump when the builder itself changes what it produces from the same recipe. */
const BUILDER_VERSION = 1;

export async function loadRecipe(sources: RecipeSources, arch: GuestArch): Promise<ResolvedRecipe> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path.join(sources.imageDir, 'recipe.json'), 'utf8'));
  } catch (err) {
    throw new VmHostError('bad-config', `Cannot read the guest image recipe in ${sources.imageDir}: ${String(err)}`, { cause: err });
  }
  const recipe = RecipeSchema.parse(parsed);
  const archInfo = recipe.architectures[arch];
  if (!archInfo) throw new VmHostError('bad-config', `The guest image recipe has no entry for architecture ${arch}.`);

  const base = createHash('sha256');
  // the base layer holds the kernel modules the initramfs loads (copied when the base is built), so
  // their list is part of its key: a changed list with an old base would boot without a new module
  base.update(JSON.stringify({ v: BUILDER_VERSION, arch, suite: recipe.suite, mirror: recipe.mirror, packages: recipe.packages, kernel: archInfo.kernelPackage, setuidAllowList: Object.keys(recipe.setuidAllowList).sort(), initramfsModules: recipe.initramfsModules }));
  base.update(await readFile(path.join(sources.imageDir, 'customize.sh')));
  base.update(await readFile(path.join(sources.imageDir, 'seccomp-filter.py')));
  const baseKey = base.digest('hex').slice(0, 16);

  const boot = createHash('sha256');
  boot.update(baseKey);
  boot.update(JSON.stringify(recipe.initramfsModules));
  boot.update(await readFile(path.join(sources.imageDir, 'init')));
  await hashTree(sources.guestDir, boot);
  const bootKey = boot.digest('hex').slice(0, 16);

  return { recipe, arch, kernelPackage: archInfo.kernelPackage, qemuBinary: archInfo.qemuBinary, baseKey, bootKey };
}

/**
 * Python's bytecode caches, left in the guest payload when someone runs its scripts on the host:
 * neither hashed nor copied, so they neither change the image's key nor ride along into the guest.
 */
export function isBuildLitter(p: string): boolean {
  return path.basename(p) === '__pycache__';
}

/** Hashes names, modes, symlink targets and contents of a tree in a stable order. */
async function hashTree(dir: string, hash: ReturnType<typeof createHash>, rel = ''): Promise<void> {
  const entries = (await readdir(path.join(dir, rel))).sort();
  for (const name of entries) {
    if (isBuildLitter(name)) continue;
    const relPath = path.posix.join(rel, name);
    const full = path.join(dir, relPath);
    const st = await lstat(full);
    hash.update(`${relPath}\0${st.mode & 0o777}\0`);
    if (st.isDirectory()) await hashTree(dir, hash, relPath);
    else if (st.isSymbolicLink()) hash.update(await readlink(full));
    else hash.update(await readFile(full));
  }
}

export function hostArch(): GuestArch {
  return process.arch === 'arm64' ? 'arm64' : 'amd64';
}
