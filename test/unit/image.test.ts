import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile, cp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { markInUse, pruneOtherLayers, readValidManifest, writeManifest } from '../../vm-host/image/builder';
import { extractVmlinux } from '../../vm-host/image/kernel';
import { resolveModules } from '../../vm-host/image/modules';
import { loadRecipe } from '../../vm-host/image/recipe';
import { requireTools } from '../../vm-host/hostTools';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-unit-image-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('kernel modules', () => {
  it('orders dependencies before dependants and skips built-ins', async () => {
    const dir = path.join(tmp, 'mods');
    await mkdir(dir);
    await writeFile(
      path.join(dir, 'modules.dep'),
      ['kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko', 'kernel/net/9p/9pnet.ko:', 'kernel/fs/netfs/netfs.ko:', 'kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko'].join('\n'),
    );
    await writeFile(path.join(dir, 'modules.builtin'), 'kernel/drivers/virtio/virtio_pci.ko\n');
    const r = await resolveModules(dir, ['virtio-pci', '9pnet_virtio', '9p']);
    assert.deepEqual(r.ordered, ['kernel/net/9p/9pnet.ko', 'kernel/net/9p/9pnet_virtio.ko', 'kernel/fs/netfs/netfs.ko', 'kernel/fs/9p/9p.ko']);
    assert.deepEqual(r.builtin, ['virtio_pci']);
    await assert.rejects(resolveModules(dir, ['nope']), /nope.*neither a module nor built in/);
  });
});

describe('kernel unpacking', () => {
  it('finds the compressed ELF payload inside a boot image', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(4096, 7)]);
    const image = Buffer.concat([Buffer.alloc(600, 1), Buffer.from([0x1f, 0x8b, 0x08]), Buffer.alloc(50, 2), gzipSync(elf), Buffer.alloc(300, 3)]);
    await writeFile(path.join(tmp, 'vmlinuz'), image);
    assert.equal(await extractVmlinux(path.join(tmp, 'vmlinuz'), path.join(tmp, 'vmlinux')), 'gzip');
    assert.deepEqual(await readFile(path.join(tmp, 'vmlinux')), elf);
  });
  it('returns undefined when there is no payload', async () => {
    await writeFile(path.join(tmp, 'junk'), Buffer.alloc(1000, 9));
    assert.equal(await extractVmlinux(path.join(tmp, 'junk'), path.join(tmp, 'out')), undefined);
  });
});

describe('recipe cache keys', () => {
  it('a guest file change rebuilds only the boot layer; a package change rebuilds the base', async () => {
    const root = path.resolve(__dirname, '..', '..', 'vm-host');
    const copy = path.join(tmp, 'vm-host');
    await cp(root, copy, { recursive: true });
    const sources = { imageDir: path.join(copy, 'image'), guestDir: path.join(copy, 'guest') };
    const a = await loadRecipe(sources, 'amd64');
    await writeFile(path.join(copy, 'guest', 'root', 'extra'), 'x');
    const b = await loadRecipe(sources, 'amd64');
    assert.equal(a.baseKey, b.baseKey);
    assert.notEqual(a.bootKey, b.bootKey);
    // Python's bytecode cache, left by running a guest script on the host, is not part of the image
    await mkdir(path.join(copy, 'guest', 'root', 'usr', 'local', 'lib', 'cowork', '__pycache__'), { recursive: true });
    await writeFile(path.join(copy, 'guest', 'root', 'usr', 'local', 'lib', 'cowork', '__pycache__', 'agent.cpython-311.pyc'), 'x');
    assert.equal((await loadRecipe(sources, 'amd64')).bootKey, b.bootKey, '__pycache__ does not change the key');
    const recipe = JSON.parse(await readFile(path.join(copy, 'image', 'recipe.json'), 'utf8')) as { packages: string[] };
    recipe.packages.push('jq');
    await writeFile(path.join(copy, 'image', 'recipe.json'), JSON.stringify(recipe));
    const c = await loadRecipe(sources, 'amd64');
    assert.notEqual(c.baseKey, b.baseKey);
    assert.notEqual(c.bootKey, b.bootKey, 'the boot layer is built on the base');
    // the base holds the modules the initramfs loads: a new list needs a new base
    const withModule = { ...recipe, initramfsModules: [...(JSON.parse(await readFile(path.join(copy, 'image', 'recipe.json'), 'utf8')) as { initramfsModules: string[] }).initramfsModules, 'vsock'] };
    await writeFile(path.join(copy, 'image', 'recipe.json'), JSON.stringify(withModule));
    assert.notEqual((await loadRecipe(sources, 'amd64')).baseKey, c.baseKey, 'a changed module list rebuilds the base');
    const arm = await loadRecipe(sources, 'arm64');
    assert.equal(arm.kernelPackage, 'linux-image-arm64');
    assert.notEqual(arm.baseKey, c.baseKey);
  });
});

describe('host tools', () => {
  it('names every missing tool and the apt package that provides it', async () => {
    await assert.rejects(
      requireTools([{ command: 'no-such-tool-a', aptPackage: 'pkg-a', purpose: 'do a' }, { command: 'sh', aptPackage: 'dash', purpose: 'x' }, { command: 'no-such-tool-b', aptPackage: 'pkg-b', purpose: 'do b' }]),
      /no-such-tool-a \(to do a\), no-such-tool-b \(to do b\).*sudo apt-get install pkg-a pkg-b/,
    );
  });
});

describe('pruning outdated layers', () => {
  it('keeps a layer another live helper uses, removes one whose users are gone, never touches the kept ones', async () => {
    const images = path.join(tmp, 'images-prune');
    const layer = (name: string, users: number[]): Promise<void> =>
      mkdir(path.join(images, name, 'users'), { recursive: true }).then(() => Promise.all(users.map((u) => writeFile(path.join(images, name, 'users', String(u)), '')))).then(() => undefined);
    await layer('amd64-base-new', []);
    await layer('amd64-boot-new', []);
    await layer('amd64-boot-old-in-use', [4242]);
    await layer('amd64-boot-old-dead-user', [4343]);
    await layer('amd64-base-old', []);
    await layer('arm64-boot-other-arch', []);
    const alive = (pid: number): boolean => pid === 4242;
    const removed = await pruneOtherLayers(images, 'amd64', [path.join(images, 'amd64-base-new'), path.join(images, 'amd64-boot-new')], undefined, alive);
    assert.deepEqual(removed.sort(), ['amd64-base-old', 'amd64-boot-old-dead-user']);
    const left = (await readdir(images)).sort();
    assert.deepEqual(left, ['amd64-base-new', 'amd64-boot-new', 'amd64-boot-old-in-use', 'arm64-boot-other-arch']);
  });

  it('marks the layers this process uses, so a build elsewhere keeps them', async () => {
    const dir = path.join(tmp, 'images-mark', 'amd64-boot-x');
    await markInUse([dir]);
    assert.deepEqual(await readdir(path.join(dir, 'users')), [String(process.pid)]);
  });
});

describe('verifying a cached layer', () => {
  it('hashes a file on first use and after it changed, not at every start', async () => {
    const dir = path.join(tmp, 'layer-verify');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'initrd.img'), 'A'.repeat(4096));
    await writeManifest(dir, ['initrd.img'], { key: 'k' });
    assert.ok(await readValidManifest(dir), 'a fresh layer verifies');
    const stamp = JSON.parse(await readFile(path.join(dir, 'verified.json'), 'utf8')) as Record<string, string>;
    assert.deepEqual(Object.keys(stamp), ['initrd.img']);
    // rewritten with the same size: ctime changes, so it is hashed again and found corrupt
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(path.join(dir, 'initrd.img'), 'B'.repeat(4096));
    assert.equal(await readValidManifest(dir, undefined, false), 'corrupt');
    // a signature that matches the file as it is now is trusted without hashing: proof that an
    // unchanged file is not read again (the cache dir's owner could rewrite the manifest as well)
    const st = await stat(path.join(dir, 'initrd.img'));
    await writeFile(path.join(dir, 'verified.json'), JSON.stringify({ 'initrd.img': `${st.size}:${st.ino}:${st.mtimeMs}:${st.ctimeMs}` }));
    assert.ok(await readValidManifest(dir, undefined, false), 'not hashed again while its signature is unchanged');
  });
});
