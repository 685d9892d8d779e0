// The image build's setuid/setgid check (vm-host/image/setuid.ts) on real squashfs images packed
// here with gensquashfs, and the recipe's own bookkeeping (every package says why it is there).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadRecipe } from '../../vm-host/image/recipe';
import { checkSetidFiles, disallowedSetid, parseSetidEntries } from '../../vm-host/image/setuid';

const vmHost = path.resolve(__dirname, '..', '..', 'vm-host');
let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-unit-setuid-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Packs a tree of { path: mode } (a trailing / makes a directory) into a squashfs. */
async function pack(name: string, tree: Record<string, number>): Promise<string> {
  const dir = path.join(tmp, name);
  for (const [rel, mode] of Object.entries(tree)) {
    const full = path.join(dir, rel);
    if (rel.endsWith('/')) await mkdir(full, { recursive: true });
    else {
      await mkdir(path.dirname(full), { recursive: true });
      await writeFile(full, '#!/bin/sh\n');
    }
    await chmod(full, mode);
  }
  const out = path.join(tmp, `${name}.sqfs`);
  execFileSync('gensquashfs', ['--pack-dir', dir, '--force', out], { stdio: 'ignore' });
  return out;
}

describe('setuid/setgid check of the packed image', () => {
  it('parses rdsquashfs --describe: setuid and setgid files, quoted names, directories skipped', () => {
    const entries = parseSetidEntries(
      [
        'dir var/mail 02775 0 8',
        'file usr/bin/su 04755 0 0',
        'file usr/bin/plain 0755 0 0',
        'file "opt/a b/\\"odd\\"" 02711 0 42',
        'slink bin 0777 0 0 usr/bin',
        'nod dev/console 0666 0 0 c 5 1',
      ].join('\n'),
    );
    assert.deepEqual(entries, [
      { path: '/usr/bin/su', mode: 0o4755 },
      { path: '/opt/a b/"odd"', mode: 0o2711 },
    ]);
    assert.deepEqual(disallowedSetid(entries, { '/usr/bin/su': 'essential' }), [{ path: '/opt/a b/"odd"', mode: 0o2711 }]);
  });

  it('fails on a setuid file outside the allow-list, naming it; passes once it is allowed', async () => {
    const image = await pack('one', {
      'usr/': 0o755,
      'usr/bin/': 0o755,
      'usr/bin/su': 0o4755,
      'usr/bin/ls': 0o755,
      'usr/local/bin/sneaky tool': 0o4755,
      'var/mail/': 0o2775,
    });
    await assert.rejects(checkSetidFiles(image, { '/usr/bin/su': 'essential' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'image-build-failed');
      assert.match(err.message, /\/usr\/local\/bin\/sneaky tool \(04755\)/);
      assert.doesNotMatch(err.message, /\/usr\/bin\/su|var\/mail/);
      return true;
    });
    const found = await checkSetidFiles(image, { '/usr/bin/su': 'essential', '/usr/local/bin/sneaky tool': 'test' });
    assert.deepEqual(found.map((e) => e.path).sort(), ['/usr/bin/su', '/usr/local/bin/sneaky tool']);
  });

  it('fails on a setgid-only file too', async () => {
    const image = await pack('gid', { 'usr/': 0o755, 'usr/bin/': 0o755, 'usr/bin/wall': 0o2755 });
    await assert.rejects(checkSetidFiles(image, {}), /\/usr\/bin\/wall \(02755\)/);
  });
});

describe('the image recipe', () => {
  it('says why for every package, and its allow-list names absolute paths only', async () => {
    const raw = JSON.parse(await readFile(path.join(vmHost, 'image', 'recipe.json'), 'utf8')) as { packages: string[]; why: Record<string, string> };
    const r = await loadRecipe({ imageDir: path.join(vmHost, 'image'), guestDir: path.join(vmHost, 'guest') }, 'amd64');
    assert.deepEqual(r.recipe.packages.filter((p) => !raw.why[p]), [], 'packages without a why');
    assert.deepEqual(Object.keys(raw.why).filter((p) => !r.recipe.packages.includes(p)), [], 'a why for a package not in the list');
    const allowed = Object.keys(r.recipe.setuidAllowList);
    assert.ok(allowed.length > 0);
    for (const p of allowed) assert.match(p, /^\/[^$]/);
    assert.equal(new Set(r.recipe.packages).size, r.recipe.packages.length, 'a package listed twice');
  });
});
