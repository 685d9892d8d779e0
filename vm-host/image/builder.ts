// Builds (or finds in the cache) the guest image: kernel, initramfs, read-only squashfs root.
// Layout under <cacheDir>/images/:
//   <arch>-base-<key>/  vmlinux|vmlinuz, rootfs.squashfs, busybox, modules/…, modules.order, manifest.json
//   <arch>-boot-<key>/  initrd.img, manifest.json
// A layer is built in a temporary directory and renamed into place when complete, and its manifest
// records the size and sha256 of every file, so an interrupted build is never used and a corrupt
// cache is detected (and rebuilt) instead of booting garbage.
// The build's programs (mmdebstrap | tar2sqfs) run in process groups of their own: cancelling the
// build (the helper's stdin closed, the window went away) kills each whole group, and the helper's
// watchdog kills them if the helper itself is SIGKILLed. Temporary layers left by an interrupted
// build (their builder process is gone) are pruned when the next build starts.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rename, rm, stat, writeFile, copyFile, chmod } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { VmHostError } from '../errors';
import { IMAGE_BUILD_TOOLS, requireTools } from '../hostTools';
import { extractVmlinux } from './kernel';
import { resolveModules } from './modules';
import { isBuildLitter, loadRecipe, type GuestArch, type RecipeSources, type ResolvedRecipe } from './recipe';
import { checkSetidFiles } from './setuid';

export interface ImageProgress {
  readonly phase: 'check' | 'packages' | 'kernel' | 'pack' | 'initramfs' | 'verify' | 'done';
  readonly message: string;
  /** 0..1, an estimate */
  readonly fraction: number;
}

export interface GuestImage {
  readonly arch: GuestArch;
  readonly key: string;
  readonly kernel: string;
  /** 'pvh' for an uncompressed ELF vmlinux, 'bzimage' for the compressed one */
  readonly kernelFormat: 'pvh' | 'bzimage';
  readonly initrd: string;
  readonly rootfs: string;
  readonly kernelVersion: string;
  readonly qemuBinary: string;
  /** true when this call built (part of) it */
  readonly built: boolean;
}

export interface EnsureImageOptions {
  readonly cacheDir: string;
  readonly sources: RecipeSources;
  readonly arch: GuestArch;
  readonly onProgress?: (p: ImageProgress) => void;
  readonly onLog?: (line: string) => void;
  readonly signal?: AbortSignal;
  /** Rebuild even when the cache holds a valid image. */
  readonly force?: boolean;
  /** a build process group started (alive) or ended: the helper's watchdog guards them */
  readonly onProcessGroup?: (pgid: number, alive: boolean) => void;
}

/** SIGTERM lets mmdebstrap unmount and clean up its chroot; SIGKILL after this. */
export const BUILD_KILL_GRACE_MS = 5_000;

interface Manifest {
  readonly key: string;
  readonly kernelVersion?: string;
  readonly kernelFormat?: 'pvh' | 'bzimage';
  readonly kernelFile?: string;
  readonly files: Record<string, { size: number; sha256: string }>;
}

/** mmdebstrap options every root shares, the base image's and its derived layers': no Recommends, no docs, man pages or locales. */
export const MMDEBSTRAP_TRIM: readonly string[] = [
  '--aptopt=APT::Install-Recommends "false"',
  '--dpkgopt=path-exclude=/usr/share/doc/*',
  '--dpkgopt=path-exclude=/usr/share/man/*',
  '--dpkgopt=path-exclude=/usr/share/locale/*',
  '--dpkgopt=path-include=/usr/share/locale/locale.alias',
];

/** tar2sqfs reading a tar on stdin into `out`: the one packing of a root, for the base image and its derived layers. */
export function tar2sqfsArgs(out: string): string[] {
  return ['--quiet', '--no-skip', '--no-xattr', '--force', '-c', 'zstd', '-X', 'level=15', '-j', String(Math.max(1, os.cpus().length)), out];
}

export async function ensureImage(opts: EnsureImageOptions): Promise<GuestImage> {
  const progress = opts.onProgress ?? (() => undefined);
  const resolved = await loadRecipe(opts.sources, opts.arch);
  const imagesDir = path.join(opts.cacheDir, 'images');
  await mkdir(imagesDir, { recursive: true });
  const baseDir = path.join(imagesDir, `${opts.arch}-base-${resolved.baseKey}`);
  const bootDir = path.join(imagesDir, `${opts.arch}-boot-${resolved.bootKey}`);
  let built = false;

  progress({ phase: 'verify', message: 'Checking the cached guest image', fraction: 0 });
  let base = opts.force ? undefined : await readValidManifest(baseDir, opts.onLog);
  if (!base) {
    await pruneStaleTemporaryLayers(imagesDir, opts.onLog);
    await buildBase(resolved, baseDir, opts);
    base = await readValidManifest(baseDir, opts.onLog);
    if (!base) throw new VmHostError('image-build-failed', `The guest image built in ${baseDir} does not verify; see the log.`);
    built = true;
  }
  let boot = opts.force || built ? undefined : await readValidManifest(bootDir, opts.onLog);
  if (!boot) {
    progress({ phase: 'initramfs', message: 'Packing the guest initramfs', fraction: 0.95 });
    await buildBoot(resolved, baseDir, bootDir, opts);
    boot = await readValidManifest(bootDir, opts.onLog);
    if (!boot) throw new VmHostError('image-build-failed', `The guest initramfs built in ${bootDir} does not verify; see the log.`);
    built = true;
  }
  await markInUse([baseDir, bootDir]);
  if (built) await pruneOtherLayers(imagesDir, opts.arch, [baseDir, bootDir], opts.onLog);
  progress({ phase: 'done', message: 'Guest image ready', fraction: 1 });
  return {
    arch: opts.arch,
    key: `${resolved.baseKey}-${resolved.bootKey}`,
    kernel: path.join(baseDir, base.kernelFile ?? 'vmlinux'),
    kernelFormat: base.kernelFormat ?? 'pvh',
    initrd: path.join(bootDir, 'initrd.img'),
    rootfs: path.join(baseDir, 'rootfs.squashfs'),
    kernelVersion: base.kernelVersion ?? 'unknown',
    qemuBinary: resolved.qemuBinary,
    built,
  };
}

/**
 * What the cache holds for this recipe, without building or removing anything (Check Setup).
 * 'boot-missing': the slow base layer is there, only the initramfs (seconds) is rebuilt at the
 * next start; `initrd` then names an older boot layer's, good enough for a probe boot.
 */
export async function inspectImage(
  cacheDir: string,
  sources: RecipeSources,
  arch: GuestArch,
): Promise<{ state: 'ready' | 'boot-missing' | 'missing' | 'corrupt'; key: string; kernel?: string; initrd?: string; qemuBinary: string }> {
  const resolved = await loadRecipe(sources, arch);
  const imagesDir = path.join(cacheDir, 'images');
  const baseDir = path.join(imagesDir, `${arch}-base-${resolved.baseKey}`);
  const bootDir = path.join(imagesDir, `${arch}-boot-${resolved.bootKey}`);
  const key = `${resolved.baseKey}-${resolved.bootKey}`;
  const qemuBinary = resolved.qemuBinary;
  const base = await readValidManifest(baseDir, undefined, false);
  if (base === 'corrupt') return { state: 'corrupt', key, qemuBinary };
  if (!base) return { state: 'missing', key, qemuBinary };
  const kernel = path.join(baseDir, base.kernelFile ?? 'vmlinux');
  const boot = await readValidManifest(bootDir, undefined, false);
  if (boot && boot !== 'corrupt') return { state: 'ready', key, kernel, initrd: path.join(bootDir, 'initrd.img'), qemuBinary };
  let initrd: string | undefined;
  for (const name of (await readdir(imagesDir)).sort()) {
    if (!name.startsWith(`${arch}-boot-`) || name.includes('.tmp-')) continue;
    const candidate = path.join(imagesDir, name, 'initrd.img');
    if (await stat(candidate).then((st) => st.isFile(), () => false)) initrd = candidate;
  }
  return { state: 'boot-missing', key, kernel, initrd, qemuBinary };
}

/**
 * Temporary layers are named <layer>.tmp-<pid>-<time>. One whose builder process is gone (an
 * interrupted build) is removed, unless something is still mounted inside it: rm never crosses
 * into a mount (mmdebstrap mounts /proc and /sys in its chroot while it runs).
 */
export async function pruneStaleTemporaryLayers(imagesDir: string, log?: (line: string) => void, isAlive: (pid: number) => boolean = pidAlive): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(imagesDir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = /\.tmp-(\d+)-\d+$/.exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    const full = path.join(imagesDir, name);
    if (await hasMountInside(full)) {
      log?.(`[image] not removing the interrupted build ${name}: something is still mounted inside it`);
      continue;
    }
    log?.(`[image] removing the interrupted build ${name}`);
    await rm(full, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function hasMountInside(dir: string): Promise<boolean> {
  if (process.platform !== 'linux') return false;
  try {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    const prefix = path.resolve(dir) + '/';
    return info.split('\n').some((l) => {
      const mountPoint = l.split(' ')[4]?.replace(/\\040/g, ' ');
      return !!mountPoint && (mountPoint + '/').startsWith(prefix);
    });
  } catch {
    return true; // cannot tell: do not risk removing through a mount
  }
}

/**
 * Layers a running helper uses are marked `<layer>/users/<pid>`: another helper's build (another
 * window still on the previous version of the extension, during an update) must not delete the
 * kernel, initramfs or root of VMs that window has yet to boot. Markers of dead processes count
 * for nothing; this process's are removed when it exits.
 */
const marked = new Set<string>();
export async function markInUse(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    const marker = path.join(dir, 'users', String(process.pid));
    if (marked.has(marker)) continue;
    await mkdir(path.dirname(marker), { recursive: true });
    await writeFile(marker, '');
    if (marked.size === 0) process.once('exit', () => marked.forEach((m) => rmSync(m, { force: true })));
    marked.add(marker);
  }
}

/** The live processes that marked a layer as in use (markInUse). */
async function usersOf(dir: string, isAlive: (pid: number) => boolean): Promise<number[]> {
  const names = await readdir(path.join(dir, 'users')).catch(() => [] as string[]);
  return names.map(Number).filter((pid) => Number.isInteger(pid) && pid > 0 && isAlive(pid));
}

/** After a build, layers of older recipes only take disk space: remove those no running helper uses. */
export async function pruneOtherLayers(imagesDir: string, arch: string, keep: string[], log?: (line: string) => void, isAlive: (pid: number) => boolean = pidAlive): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(imagesDir)) {
    const full = path.join(imagesDir, name);
    if (!name.startsWith(`${arch}-`) || keep.includes(full) || name.includes('.tmp-')) continue;
    // derived layers (guestLayer.ts) of the base that is kept stay: only another base's are outdated
    if (keep.some((k) => name.startsWith(`${arch}-layer-${path.basename(k).slice(`${arch}-base-`.length)}-`))) continue;
    const users = await usersOf(full, isAlive);
    if (users.length > 0) {
      log?.(`[image] keeping the outdated layer ${name}: in use by process ${users.join(', ')} (another window); removed by a later build`);
      continue;
    }
    log?.(`[image] removing the outdated layer ${name}`);
    await rm(full, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * What a file's hash was checked against: size, inode, mtime and ctime. A write to the file, a
 * replacement or a touch changes ctime, which user space cannot set back; so an unchanged
 * signature means the bytes hashed before are still there, and the ~300 MB of a layer are hashed
 * on first use (and after any change), not at every helper start (~0.7 s of each cold start).
 */
const VERIFIED_FILE = 'verified.json';
function fileSignature(st: { size: number; ino: number; mtimeMs: number; ctimeMs: number }): string {
  return `${st.size}:${st.ino}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Returns the manifest when every file it lists is present with the recorded size and hash. */
export async function readValidManifest(dir: string, log?: (line: string) => void): Promise<Manifest | undefined>;
export async function readValidManifest(dir: string, log: ((line: string) => void) | undefined, removeCorrupt: false): Promise<Manifest | 'corrupt' | undefined>;
export async function readValidManifest(dir: string, log?: (line: string) => void, removeCorrupt = true): Promise<Manifest | 'corrupt' | undefined> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return undefined; // not built yet
  }
  const verified: Record<string, string> = await readFile(path.join(dir, VERIFIED_FILE), 'utf8')
    .then((t) => JSON.parse(t) as Record<string, string>)
    .catch(() => ({}));
  const now: Record<string, string> = {};
  for (const [name, want] of Object.entries(manifest.files)) {
    const file = path.join(dir, name);
    try {
      const st = await stat(file);
      const signature = fileSignature(st);
      if (st.size !== want.size) throw new Error(`size ${st.size}, expected ${want.size}`);
      if (verified[name] !== signature && (await sha256File(file)) !== want.sha256) throw new Error('hash differs');
      now[name] = signature;
    } catch (err) {
      if (!removeCorrupt) return 'corrupt';
      log?.(`[image] cached ${file} is corrupt (${String(err)}); rebuilding`);
      await rm(dir, { recursive: true, force: true });
      return undefined;
    }
  }
  if (JSON.stringify(now) !== JSON.stringify(verified)) await writeFile(path.join(dir, VERIFIED_FILE), JSON.stringify(now)).catch(() => undefined);
  return manifest;
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => hash.update(c))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

export async function writeManifest(dir: string, files: string[], extra: Omit<Manifest, 'files'>): Promise<void> {
  const entries: Manifest['files'] = {};
  for (const name of files) {
    const full = path.join(dir, name);
    entries[name] = { size: (await stat(full)).size, sha256: await sha256File(full) };
  }
  const manifest: Manifest = { ...extra, files: entries };
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

export async function publish(tmp: string, finalDir: string): Promise<void> {
  await rm(finalDir, { recursive: true, force: true });
  await rename(tmp, finalDir);
}

const MMDEBSTRAP_PHASES: [RegExp, number, string][] = [
  [/downloading packages/i, 0.1, 'Downloading Debian packages'],
  [/extracting archives/i, 0.3, 'Unpacking packages'],
  [/installing essential packages/i, 0.35, 'Installing essential packages'],
  [/installing remaining packages/i, 0.5, 'Installing packages'],
  [/cowork: fetching kernel/i, 0.7, 'Fetching the kernel'],
  [/cowork: trimming/i, 0.78, 'Trimming the root filesystem'],
  [/creating tarball|tarball/i, 0.8, 'Packing the root filesystem'],
];

async function buildBase(r: ResolvedRecipe, finalDir: string, opts: EnsureImageOptions): Promise<void> {
  const progress = opts.onProgress ?? (() => undefined);
  const log = opts.onLog ?? (() => undefined);
  progress({ phase: 'check', message: 'Checking host tools for the image build', fraction: 0.01 });
  const tools = await requireTools(IMAGE_BUILD_TOOLS);
  const tmp = `${finalDir}.tmp-${process.pid}-${Date.now()}`;
  const out = path.join(tmp, 'out');
  const work = path.join(tmp, 'work');
  await mkdir(out, { recursive: true });
  await mkdir(work, { recursive: true });
  try {
    progress({ phase: 'packages', message: `Building the guest root from Debian ${r.recipe.suite} packages (first run only, a few minutes)`, fraction: 0.02 });
    const mmArgs = [
      '--variant=apt',
      `--arch=${r.arch}`,
      '--format=tar',
      ...MMDEBSTRAP_TRIM,
      `--include=${r.recipe.packages.join(',')}`,
      `--customize-hook=${path.join(opts.sources.imageDir, 'customize.sh')}`,
      r.recipe.suite,
      '-',
      r.recipe.mirror,
    ];
    const rootfsTmp = path.join(tmp, 'rootfs.squashfs');
    await runPipeline(
      // TMPDIR inside the layer: mmdebstrap's chroot of an interrupted build is pruned with it
      [tools.get('mmdebstrap')!, mmArgs, { COWORK_IMAGE_OUT: out, COWORK_KERNEL_PACKAGE: r.kernelPackage, COWORK_IMAGE_SRC: opts.sources.imageDir, TMPDIR: work }],
      [tools.get('tar2sqfs')!, tar2sqfsArgs(rootfsTmp)],
      (line) => {
        log(`[image] ${line}`);
        for (const [re, fraction, message] of MMDEBSTRAP_PHASES) if (re.test(line)) progress({ phase: 'packages', message, fraction });
      },
      opts.signal,
      opts.onProcessGroup,
    );
    await rm(work, { recursive: true, force: true });
    const setid = await checkSetidFiles(rootfsTmp, r.recipe.setuidAllowList);
    log(`[image] setuid/setgid files: ${setid.length}, all in the recipe's allow-list`);

    progress({ phase: 'kernel', message: 'Preparing the kernel and its modules', fraction: 0.9 });
    const kernelVersion = (await readFile(path.join(out, 'kernel', 'version'), 'utf8')).trim();
    const vmlinuz = path.join(out, 'kernel', 'boot', `vmlinuz-${kernelVersion}`);
    let kernelFile = 'vmlinux';
    let kernelFormat: 'pvh' | 'bzimage' = 'pvh';
    const how = r.arch === 'amd64' ? await extractVmlinux(vmlinuz, path.join(tmp, 'vmlinux')) : undefined;
    if (!how) {
      kernelFile = 'vmlinuz';
      kernelFormat = 'bzimage';
      await copyFile(vmlinuz, path.join(tmp, kernelFile));
    }
    log(`[image] kernel ${kernelVersion}: ${how ? `unpacked ${how} payload for PVH boot` : 'booting the compressed image'}`);

    const modulesDir = path.join(out, 'kernel', 'lib', 'modules', kernelVersion);
    const mods = await resolveModules(modulesDir, r.recipe.initramfsModules);
    const files = [kernelFile, 'rootfs.squashfs', 'busybox', 'modules.order'];
    for (const rel of mods.ordered) {
      const dest = path.join(tmp, 'modules', rel);
      await mkdir(path.dirname(dest), { recursive: true });
      await copyFile(path.join(modulesDir, rel), dest);
      files.push(path.posix.join('modules', rel));
    }
    await writeFile(path.join(tmp, 'modules.order'), mods.ordered.join('\n') + '\n');
    await copyFile(path.join(out, 'busybox'), path.join(tmp, 'busybox'));
    await chmod(path.join(tmp, 'busybox'), 0o755);
    await rm(out, { recursive: true, force: true });
    await writeManifest(tmp, files, { key: r.baseKey, kernelVersion, kernelFormat, kernelFile });
    await publish(tmp, finalDir);
  } catch (err) {
    if (await hasMountInside(tmp)) log(`[image] keeping ${tmp}: something is still mounted inside it`);
    else await rm(tmp, { recursive: true, force: true });
    if (err instanceof VmHostError) throw err;
    throw new VmHostError('image-build-failed', `Building the guest image failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function buildBoot(r: ResolvedRecipe, baseDir: string, finalDir: string, opts: EnsureImageOptions): Promise<void> {
  const tools = await requireTools(IMAGE_BUILD_TOOLS.filter((t) => t.command === 'cpio'));
  const tmp = `${finalDir}.tmp-${process.pid}-${Date.now()}`;
  const stage = path.join(tmp, 'stage');
  try {
    await mkdir(path.join(stage, 'bin'), { recursive: true });
    await mkdir(path.join(stage, 'etc'), { recursive: true });
    await copyFile(path.join(baseDir, 'busybox'), path.join(stage, 'bin', 'busybox'));
    await chmod(path.join(stage, 'bin', 'busybox'), 0o755);
    await cp(path.join(baseDir, 'modules'), path.join(stage, 'lib', 'modules'), { recursive: true });
    await copyFile(path.join(baseDir, 'modules.order'), path.join(stage, 'etc', 'cowork-modules'));
    await copyFile(path.join(opts.sources.imageDir, 'init'), path.join(stage, 'init'));
    await chmod(path.join(stage, 'init'), 0o755);
    await cp(path.join(opts.sources.guestDir, 'root'), path.join(stage, 'payload'), { recursive: true, preserveTimestamps: true, filter: (src) => !isBuildLitter(src) });
    const entries = await listTree(stage);
    const initrd = path.join(tmp, 'initrd.img');
    await runCpio(tools.get('cpio')!, stage, entries, initrd);
    await rm(stage, { recursive: true, force: true });
    await writeManifest(tmp, ['initrd.img'], { key: r.bootKey });
    await publish(tmp, finalDir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof VmHostError) throw err;
    throw new VmHostError('image-build-failed', `Packing the guest initramfs failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function listTree(root: string, rel = '.'): Promise<string[]> {
  const out: string[] = [rel];
  for (const ent of (await readdir(path.join(root, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const child = rel === '.' ? ent.name : `${rel}/${ent.name}`;
    if (ent.isDirectory()) out.push(...(await listTree(root, child)));
    else out.push(child);
  }
  return out;
}

function runCpio(cpio: string, cwd: string, entries: string[], outFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cpio, ['--null', '--create', '--format=newc', '--owner=0:0', '--quiet', '-O', outFile], { cwd, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`cpio exited ${code}: ${stderr.trim()}`))));
    child.stdin.end(entries.join('\0') + '\0');
  });
}

export type Stage = [cmd: string, args: string[], env?: Record<string, string>];

/** Runs `a | b`, streaming both stderrs line by line to onLine; rejects with the tail of the log. */
export function runPipeline(a: Stage, b: Stage, onLine: (line: string) => void, signal?: AbortSignal, onProcessGroup?: (pgid: number, alive: boolean) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const tail: string[] = [];
    const lineSink = (buf: { rest: string }) => (chunk: Buffer) => {
      buf.rest += chunk.toString();
      const lines = buf.rest.split('\n');
      buf.rest = lines.pop() ?? '';
      for (const l of lines) {
        if (!l.trim()) continue;
        tail.push(l);
        if (tail.length > 20) tail.shift();
        onLine(l);
      }
    };
    const pa = spawn(a[0], a[1], { env: { ...process.env, ...a[2] }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const pb = spawn(b[0], b[1], { env: { ...process.env, ...b[2] }, stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    for (const p of [pa, pb]) if (p.pid) onProcessGroup?.(p.pid, true);
    pa.stdout.pipe(pb.stdin);
    pb.stdin.on('error', () => undefined);
    pa.stderr.on('data', lineSink({ rest: '' }));
    pb.stderr.on('data', lineSink({ rest: '' }));
    const codes: (number | null)[] = [];
    let failed: Error | undefined;
    const killGroups = (sig: NodeJS.Signals): void => {
      for (const p of [pa, pb]) {
        if (!p.pid) continue;
        try {
          process.kill(-p.pid, sig);
        } catch {
          /* the group is gone */
        }
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      failed = new VmHostError('cancelled', 'The image build was cancelled.');
      killGroups('SIGTERM');
      killTimer = setTimeout(() => killGroups('SIGKILL'), BUILD_KILL_GRACE_MS);
    };
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (name: string) => (code: number | null): void => {
      codes.push(code);
      // the leader exited: kill what it left in its group (apt, dpkg, hooks)
      const p = name === path.basename(a[0]) ? pa : pb;
      if (p.pid) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* nothing left */
        }
        onProcessGroup?.(p.pid, false);
      }
      if (code !== 0 && !failed) failed = new Error(`${name} exited with ${code}:\n${tail.join('\n')}`);
      if (codes.length === 2) {
        clearTimeout(killTimer);
        signal?.removeEventListener('abort', onAbort);
        if (failed) reject(failed);
        else resolve();
      }
    };
    pa.on('error', (e) => (failed ??= e));
    pb.on('error', (e) => (failed ??= e));
    pa.on('close', done(path.basename(a[0])));
    pb.on('close', done(path.basename(b[0])));
  });
}
