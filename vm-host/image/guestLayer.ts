// A derived image layer: the base image's root plus a workspace's extra Debian packages and its
// setup script (the person consented to both in the extension; extension/config/guestConsent.ts).
// It is a whole root squashfs that replaces the base's at boot (the kernel, initramfs and the
// Cowork payload stay the base's), cached under <cacheDir>/images/<arch>-layer-<baseKey>-<key>/ by
// the hash of the base key, the spec, the hook and the setuid allow-list; so a second start, or
// another workspace with the same spec, builds nothing. Layers of an outdated base are pruned with
// it (builder.ts pruneOtherLayers).
// Built with the base's tools: mmdebstrap (custom variant: installs nothing itself) unpacks the
// base root with its tar-in hook, runs layer-customize.sh (apt-get install through the host's
// network, the setup script as root in the chroot, then the checks that refuse a layer that would
// weaken the guest: setuid/setgid files outside the recipe's allow-list, changed sandbox files),
// and streams the root as a tar into tar2sqfs. The script runs here, at build time only: a task's
// VM boots the result read-only like the base (the sandbox's root stays read-only).
// What the build cannot protect: the setup script runs as root in a chroot on this machine, which
// is not a sandbox. That is why the consent dialog shows the script's full text and says so.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { GuestLayerSpec } from '../../extension/protocol/vmHost';
import { VmHostError } from '../errors';
import { IMAGE_BUILD_TOOLS, requireTools } from '../hostTools';
import { hasMountInside, markInUse, MMDEBSTRAP_TRIM, publish, readValidManifest, runPipeline, sha256File, tar2sqfsArgs, writeManifest, type EnsureImageOptions, type GuestImage, type ImageProgress } from './builder';
import { loadRecipe } from './recipe';

/** Bump when the layer build produces something else from the same spec. */
const LAYER_VERSION = 1;

export interface GuestLayer {
  readonly key: string;
  readonly rootfs: string;
  readonly built: boolean;
}

/** The spec in a canonical form (sorted, de-duplicated packages; no empty script). */
export function canonicalLayerSpec(spec: GuestLayerSpec): GuestLayerSpec {
  const parsed = GuestLayerSpec.parse(spec);
  const packages = [...new Set(parsed.packages)].sort();
  return parsed.setup?.trim() ? { packages, setup: parsed.setup } : { packages };
}

export function isEmptyLayerSpec(spec: GuestLayerSpec): boolean {
  return spec.packages.length === 0 && !spec.setup?.trim();
}

/** The setuid/setgid allow-list of the base recipe (recipe.json's setuidAllowList, when present). */
export async function setuidAllowList(imageDir: string): Promise<string[]> {
  const raw = JSON.parse(await readFile(path.join(imageDir, 'recipe.json'), 'utf8')) as { setuidAllowList?: Record<string, unknown> };
  return Object.keys(raw.setuidAllowList ?? {}).filter((k) => k.startsWith('/')).sort();
}

export async function layerKey(baseKey: string, spec: GuestLayerSpec, imageDir: string): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: LAYER_VERSION, baseKey, spec: canonicalLayerSpec(spec), allow: await setuidAllowList(imageDir) }));
  h.update(await readFile(path.join(imageDir, 'layer-customize.sh')));
  return h.digest('hex').slice(0, 16);
}

export type EnsureLayerOptions = Pick<EnsureImageOptions, 'cacheDir' | 'sources' | 'onProgress' | 'onLog' | 'signal' | 'onProcessGroup'> & {
  readonly base: GuestImage;
  readonly spec: GuestLayerSpec;
};

/** The derived layer for this spec on this base: from the cache, or built now (with progress). */
export async function ensureGuestLayer(opts: EnsureLayerOptions): Promise<GuestLayer> {
  const spec = canonicalLayerSpec(opts.spec);
  const { baseKey } = await loadRecipe(opts.sources, opts.base.arch);
  const key = await layerKey(baseKey, spec, opts.sources.imageDir);
  const dir = path.join(opts.cacheDir, 'images', `${opts.base.arch}-layer-${baseKey}-${key}`);
  const rootfs = path.join(dir, 'rootfs.squashfs');
  if (await readValidManifest(dir, opts.onLog)) {
    await markInUse([dir]);
    return { key, rootfs, built: false };
  }
  await buildLayer(spec, key, dir, opts);
  if (!(await readValidManifest(dir, opts.onLog))) throw new VmHostError('image-build-failed', `The guest layer built in ${dir} does not verify; see the log.`);
  await markInUse([dir]);
  return { key, rootfs, built: true };
}

const LAYER_PHASES: [RegExp, number, string][] = [
  [/setup-hook|tar-in/i, 0.1, 'Unpacking the base image'],
  [/cowork: installing/i, 0.25, "Installing the workspace's Debian packages"],
  [/cowork: running the layer's setup script/i, 0.55, "Running the workspace's setup script"],
  [/cowork: checking/i, 0.75, 'Checking the layer (setuid files, sandbox files)'],
  [/creating tarball/i, 0.8, 'Packing the layer'],
];

async function buildLayer(spec: GuestLayerSpec, key: string, finalDir: string, opts: EnsureLayerOptions): Promise<void> {
  const progress = (p: ImageProgress): void => opts.onProgress?.(p);
  const log = opts.onLog ?? (() => undefined);
  progress({ phase: 'check', message: "Checking host tools for the workspace's guest layer", fraction: 0.01 });
  const tools = await requireTools([...IMAGE_BUILD_TOOLS.filter((t) => t.command === 'mmdebstrap' || t.command === 'tar2sqfs'), { command: 'sqfs2tar', aptPackage: 'squashfs-tools-ng', purpose: 'unpack the base image for a derived layer' }]);
  const recipe = await loadRecipe(opts.sources, opts.base.arch);
  const tmp = `${finalDir}.tmp-${process.pid}-${Date.now()}`;
  const work = path.join(tmp, 'work');
  await mkdir(work, { recursive: true });
  try {
    progress({ phase: 'packages', message: `Building the workspace's guest layer (${spec.packages.length} package${spec.packages.length === 1 ? '' : 's'}${spec.setup ? ' and a setup script' : ''})`, fraction: 0.02 });
    const baseTar = path.join(work, 'base.tar');
    await runToFile(tools.get('sqfs2tar')!, [opts.base.rootfs], baseTar, opts.signal);
    const allow = path.join(work, 'setuid-allow');
    await writeFile(allow, (await setuidAllowList(opts.sources.imageDir)).join('\n') + '\n');
    const setup = path.join(work, 'setup.sh');
    if (spec.setup) await writeFile(setup, spec.setup, { mode: 0o600 });
    const mmArgs = [
      '--variant=custom',
      `--arch=${opts.base.arch}`,
      '--format=tar',
      ...MMDEBSTRAP_TRIM,
      `--setup-hook=tar-in ${baseTar} /`,
      `--customize-hook=${path.join(opts.sources.imageDir, 'layer-customize.sh')}`,
      recipe.recipe.suite,
      '-',
      recipe.recipe.mirror,
    ];
    const rootfsTmp = path.join(tmp, 'rootfs.squashfs');
    await runPipeline(
      [tools.get('mmdebstrap')!, mmArgs, { COWORK_LAYER_PACKAGES: spec.packages.join(' '), COWORK_LAYER_SETUP: spec.setup ? setup : '', COWORK_SETUID_ALLOW: allow, TMPDIR: work }],
      [tools.get('tar2sqfs')!, tar2sqfsArgs(rootfsTmp)],
      (line) => {
        log(`[layer] ${line}`);
        for (const [re, fraction, message] of LAYER_PHASES) if (re.test(line)) progress({ phase: 'packages', message, fraction });
      },
      opts.signal,
      opts.onProcessGroup,
    );
    await rm(work, { recursive: true, force: true });
    progress({ phase: 'verify', message: 'Recording the layer', fraction: 0.95 });
    await writeManifest(tmp, ['rootfs.squashfs'], { key });
    log(`[layer] built ${path.basename(finalDir)}: ${spec.packages.join(' ') || 'no packages'}${spec.setup ? ' + setup script' : ''}; rootfs sha256 ${(await sha256File(rootfsTmp)).slice(0, 16)}`);
    await publish(tmp, finalDir);
  } catch (err) {
    if (await hasMountInside(tmp)) log(`[layer] keeping ${tmp}: something is still mounted inside it`);
    else await rm(tmp, { recursive: true, force: true });
    if (err instanceof VmHostError) throw err;
    throw new VmHostError('image-build-failed', `Building the workspace's guest layer failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** Runs cmd with stdout into file (sqfs2tar of the base: about a second). */
async function runToFile(cmd: string, args: string[], file: string, signal?: AbortSignal): Promise<void> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  await pipeline(child.stdout, createWriteStream(file));
  const code = await exited;
  if (code !== 0) throw new Error(`${path.basename(cmd)} exited ${code}: ${stderr.trim()}`);
}
