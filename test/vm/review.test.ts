// Review against a real guest and a real temporary workspace: the change set from the overlay,
// accepting and discarding, and every hostile path refused with nothing written.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, readlink, lstat, stat, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { applyChange, isConflicted } from '../../extension/changes/apply';
import { discardInGuest, readChangeSet, type Change } from '../../extension/changes/changeSet';
import { applyDirectly, DirectRecord, revertDirect } from '../../extension/changes/direct';
import { readProposed, readProposedBatch } from '../../extension/changes/readBatch';
import { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { until } from '../support/wait';
import { bootGuest, startHelper, tempDir, vmResources } from './harness';

let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let outside: string;
let startedAt: number;
const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]); // "caf\xe9.txt", not UTF-8

/** path → sha256 (files), "-> target" (links), "dir" — with raw-byte names shown as hex when not UTF-8. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: Buffer): Promise<void> => {
    const full = Buffer.concat([Buffer.from(dir), rel.length ? Buffer.from('/') : Buffer.alloc(0), rel]);
    for (const name of await readdir(full, { encoding: 'buffer' })) {
      const r = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
      const p = Buffer.concat([Buffer.from(dir), Buffer.from('/'), r]);
      const st = await lstat(p);
      const key = r.toString('utf8').includes('\uFFFD') ? `hex:${r.toString('hex')}` : r.toString('utf8');
      if (st.isSymbolicLink()) out.set(key, `-> ${await readlink(p, { encoding: 'utf8' })}`);
      else if (st.isDirectory()) {
        out.set(key, 'dir');
        await walk(r);
      } else out.set(key, `${createHash('sha256').update(await readFile(p)).digest('hex')} ${(st.mode & 0o777).toString(8)}`);
    }
  };
  await walk(Buffer.alloc(0));
  return out;
}

const find = (cs: { changes: Change[] }, display: string): Change | undefined => cs.changes.find((c) => c.display === display);
const apply = (c: Change) => applyChange(c, { workspace: ws, since: startedAt, readProposed: (rel) => readProposed(vm, rel) });

before(async () => {
  root = await tempDir('review');
  ws = path.join(root.dir, 'ws');
  outside = path.join(root.dir, 'outside');
  await mkdir(path.join(ws, 'dir'), { recursive: true });
  await mkdir(path.join(ws, 'tree'), { recursive: true });
  await mkdir(outside);
  for (const [name, content] of [['keep.txt', 'keep\n'], ['modify.txt', 'old\n'], ['delete.txt', 'bye\n'], ['rename-from.txt', 'moving\n'], ['mode.sh', '#!/bin/sh\necho hi\n'], ['dir/nested.txt', 'nested\n'], ['tree/a', 'a\n'], ['tree/b', 'b\n'], ['conflict.txt', 'base\n'], ['discard.txt', 'host version\n']]) {
    await writeFile(path.join(ws, name!), content!);
  }
  await chmod(path.join(ws, 'mode.sh'), 0o644);
  await symlink(outside, path.join(ws, 'outlink'));
  await writeFile(path.join(outside, 'untouchable.txt'), 'outside\n');
  client = startHelper();
  vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'review', { diskGiB: 2 });
  sb = GuestSandbox.for(vm);
  startedAt = Date.now();
  const script = [
    'echo new > modify.txt',
    'rm delete.txt',
    'mv rename-from.txt rename-to.txt',
    'chmod +x mode.sh',
    'mkdir -p new/deep/dir && echo deep > new/deep/dir/file.txt',
    'head -c 4096 /dev/urandom > bin.dat',
    `printf latin > $'caf\\xe9.txt'`,
    'head -c 52428800 /dev/urandom > big.bin',
    'rm -rf tree && mkdir tree && echo replaced > tree/c',
    'ln -s /etc/passwd evil-abs',
    'ln -s ../outside/untouchable.txt evil-rel',
    'ln -s modify.txt good-link',
    'echo agent > conflict.txt',
    'echo agent version > discard.txt',
    'rm outlink && mkdir outlink && echo pwned > outlink/x',
  ].join(' && ');
  const r = await sb.run(script, { timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr.toString());
  await writeFile(path.join(ws, 'conflict.txt'), 'edited on the host during the task\n');
});

after(async () => {
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await root?.dispose();
});

describe('review: the change set', () => {
  it('reports every kind of change from the overlay, and nothing unchanged', async () => {
    const cs = await readChangeSet(vm);
    const kinds = Object.fromEntries(cs.changes.map((c) => [c.path.toString('utf8').includes('\uFFFD') ? `hex:${c.path.toString('hex')}` : c.display, c.kind]));
    assert.deepEqual(kinds, {
      'bin.dat': 'added',
      'big.bin': 'added',
      [`hex:${LATIN1_NAME.toString('hex')}`]: 'added',
      'conflict.txt': 'modified',
      'delete.txt': 'deleted',
      'discard.txt': 'modified',
      'evil-abs': 'symlink',
      'evil-rel': 'symlink',
      'good-link': 'symlink',
      'mode.sh': 'mode',
      'modify.txt': 'modified',
      'new/deep/dir/file.txt': 'added',
      'outlink': 'deleted',
      'outlink/x': 'added',
      'rename-from.txt': 'deleted',
      'rename-to.txt': 'added',
      'tree/a': 'deleted',
      'tree/b': 'deleted',
      'tree/c': 'added',
    });
    assert.equal(find(cs, 'big.bin')!.size, 52_428_800);
    assert.match(find(cs, 'modify.txt')!.sha256!, /^[0-9a-f]{64}$/);
  });

  it('reads many proposed files in one round trip, byte-exact, raw names included', async () => {
    const names = [Buffer.from('bin.dat'), LATIN1_NAME, Buffer.from('no-such-file'), Buffer.from('new/deep/dir/file.txt')];
    const got = await readProposedBatch(vm, names);
    assert.deepEqual(got[0], await readProposed(vm, Buffer.from('bin.dat')));
    assert.equal(got[1]?.toString(), 'latin');
    assert.equal(got[2], undefined);
    assert.equal(got[3]?.toString(), 'deep\n');
    await assert.rejects(readProposedBatch(vm, [Buffer.from('../etc/passwd')]), /not allowed/);
  });

  it('detects the file the person edited on the host during the task as a conflict', async () => {
    const cs = await readChangeSet(vm);
    assert.equal(await isConflicted(ws, find(cs, 'conflict.txt')!, startedAt), true);
    assert.equal(await isConflicted(ws, find(cs, 'modify.txt')!, startedAt), false);
  });
});

describe('review: accept and discard', () => {
  it('refuses hostile changes and writes nothing for them', async () => {
    const hostSide = async (): Promise<unknown> => [await snapshot(ws), await snapshot(outside)];
    const before = await hostSide();
    const cs = await readChangeSet(vm);
    for (const name of ['evil-abs', 'evil-rel', 'outlink/x']) {
      const r = await apply(find(cs, name)!);
      assert.equal(r.outcome, 'refused', name);
      assert.match(r.outcome === 'refused' ? r.reason : '', /outside the workspace|leaves the workspace/, name);
    }
    for (const bad of ['../escape.txt', '/etc/passwd', 'a/../../b', 'x\0y']) {
      const r = await apply({ path: Buffer.from(bad), display: bad, kind: 'added', mode: 0o644 });
      assert.equal(r.outcome, 'refused', bad);
    }
    assert.deepEqual(await hostSide(), before, 'nothing changed on the host, inside or outside the workspace');
    assert.equal(await readFile(path.join(outside, 'untouchable.txt'), 'utf8'), 'outside\n');
  });

  it('accepts one file atomically, and the host tree changes only there', async () => {
    const before = await snapshot(ws);
    const cs = await readChangeSet(vm);
    assert.equal((await apply(find(cs, 'modify.txt')!)).outcome, 'applied');
    const after = await snapshot(ws);
    const changed = [...after.keys()].filter((k) => after.get(k) !== before.get(k));
    assert.deepEqual(changed, ['modify.txt']);
    assert.equal(await readFile(path.join(ws, 'modify.txt'), 'utf8'), 'new\n');
    assert.ok(!(await readdir(ws)).some((n) => n.includes('.cowork-')), 'no temporary file left');
  });

  it('discards one change: the guest forgets it and sees the host version again', async () => {
    const cs = await readChangeSet(vm);
    await discardInGuest(vm, [find(cs, 'discard.txt')!.path]);
    assert.equal((await sb.run('cat discard.txt')).stdout.toString(), 'host version\n');
    const again = await readChangeSet(vm);
    assert.equal(find(again, 'discard.txt'), undefined);
    assert.equal(await readFile(path.join(ws, 'discard.txt'), 'utf8'), 'host version\n');
  });

  it('keeps both versions of a conflicted file when asked', async () => {
    const cs = await readChangeSet(vm);
    const r = await applyChange(find(cs, 'conflict.txt')!, { workspace: ws, since: startedAt, readProposed: (rel) => readProposed(vm, rel), onConflict: () => Promise.resolve('keep-both') });
    assert.equal(r.outcome, 'kept-both');
    assert.equal(await readFile(path.join(ws, 'conflict.txt'), 'utf8'), 'edited on the host during the task\n');
    assert.equal(await readFile(path.join(ws, 'conflict.txt.cowork-proposed'), 'utf8'), 'agent\n');
  });

  it('accepts all the rest: the host tree ends byte-for-byte as the agent left it', async () => {
    const cs = await readChangeSet(vm);
    const results = [];
    // mode.sh becomes executable: it runs on the host, so it is written only once confirmed by name
    const modeSh = find(cs, 'mode.sh')!;
    const unconfirmed = await apply(modeSh);
    assert.equal(unconfirmed.outcome === 'refused' && unconfirmed.code, 'runs-on-host');
    results.push(await applyChange(modeSh, { workspace: ws, since: startedAt, readProposed: (rel) => readProposed(vm, rel), confirmed: new Set([modeSh.path.toString('base64')]) }));
    for (const c of cs.changes) if (!['evil-abs', 'evil-rel', 'outlink', 'outlink/x', 'conflict.txt', 'modify.txt', 'mode.sh'].includes(c.display)) results.push(await apply(c));
    assert.deepEqual(results.filter((r) => r.outcome !== 'applied').map((r) => r.change.display), []);
    const host = await snapshot(ws);
    assert.equal(host.get('rename-to.txt')?.split(' ')[0], createHash('sha256').update('moving\n').digest('hex'));
    assert.ok(!host.has('rename-from.txt') && !host.has('delete.txt') && !host.has('tree/a') && !host.has('tree/b'));
    assert.equal(host.get('mode.sh')?.split(' ')[1], '755');
    assert.equal(host.get('good-link'), '-> modify.txt');
    assert.equal(await readFile(path.join(ws, 'new/deep/dir/file.txt'), 'utf8'), 'deep\n');
    assert.equal((await stat(path.join(ws, 'big.bin'))).size, 52_428_800);
    assert.equal(await readFile(Buffer.concat([Buffer.from(`${ws}/`), LATIN1_NAME]), 'utf8'), 'latin');
    const guestSums = (await vm.sh('cd /workspace && sha256sum big.bin bin.dat tree/c')).stdout.toString();
    const hostSums = (await Promise.all(['big.bin', 'bin.dat', 'tree/c'].map(async (f) => `${createHash('sha256').update(await readFile(path.join(ws, f))).digest('hex')}  ${f}`))).join('\n') + '\n';
    assert.equal(hostSums, guestSums, 'binary and large files are byte-for-byte the agent\'s');
    assert.equal(await readFile(path.join(outside, 'untouchable.txt'), 'utf8'), 'outside\n');
    assert.ok((await lstat(path.join(ws, 'outlink'))).isSymbolicLink(), 'the refused change left the host symlink alone');
  });

  it('keeps the changes on the session disk when the VM is killed, for review after a restart', async () => {
    await sb.run('echo survived > survivor.txt');
    // What the product promises: a change the change set listed is on the session disk (the scan
    // ends with syncfs, and the panel scans after every command). No fixed wait for the guest's
    // own writeback, which a loaded emulated host may delay past any sleep (CI run of stop 17).
    assert.equal(find(await readChangeSet(vm), 'survivor.txt')?.kind, 'added', 'listed before the kill');
    const { vms } = await client.request('vm.list', {});
    const pid = vms.find((v) => v.vmId === 'review')!.pid!;
    process.kill(pid, 'SIGKILL');
    await until(`QEMU (pid ${pid}) gone after SIGKILL`, () => !running(pid), 10_000);
    await client.request('vm.stop', { vmId: 'review' }).catch(() => undefined);
    vm = await GuestVm.start(client, { vmId: 'review', workspace: ws, sessionDisk: path.join(root.dir, 'sessions', 'review.qcow2'), accelerator: 'auto', ...vmResources(), diskGiB: 2 });
    sb = GuestSandbox.for(vm);
    const cs = await readChangeSet(vm);
    assert.equal(find(cs, 'survivor.txt')?.kind, 'added');
    assert.equal((await readProposed(vm, Buffer.from('survivor.txt'))).toString(), 'survived\n');
  });
});

describe('review: direct mode', () => {
  it('writes the agent\'s changes to the workspace at once, keeps the person\'s versions, and reverts them', async () => {
    await discardInGuest(vm, 'all');
    const before = await snapshot(ws);
    const recordDir = path.join(root.dir, 'direct');
    const record = await DirectRecord.open(recordDir);
    const r0 = await sb.run('echo direct > keep.txt && echo fresh > direct-new.txt && rm dir/nested.txt && ln -s /etc/shadow direct-evil');
    assert.equal(r0.code, 0, r0.stderr.toString());
    const r = await applyDirectly(vm, ws, record, (await readChangeSet(vm)).changes);
    assert.deepEqual(r.applied.map((c) => c.display).sort(), ['dir/nested.txt', 'direct-new.txt', 'keep.txt']);
    assert.deepEqual(r.refused.map((x) => x.change.display), ['direct-evil'], 'a symlink out of the workspace is refused in direct mode too');
    assert.equal(await readFile(path.join(ws, 'keep.txt'), 'utf8'), 'direct\n');
    assert.equal(await readFile(path.join(ws, 'direct-new.txt'), 'utf8'), 'fresh\n');
    await assert.rejects(lstat(path.join(ws, 'dir/nested.txt')), /ENOENT/);
    await assert.rejects(lstat(path.join(ws, 'direct-evil')), /ENOENT/);
    assert.deepEqual((await readChangeSet(vm)).changes.map((c) => c.display), ['direct-evil'], 'what was applied leaves the change set');

    // the record survives a reload and holds the person's versions
    const reopened = await DirectRecord.open(recordDir);
    assert.deepEqual(reopened.all().map((e) => Buffer.from(e.path, 'base64').toString()).sort(), ['dir/nested.txt', 'direct-new.txt', 'keep.txt']);
    const keep = reopened.get(Buffer.from('keep.txt').toString('base64'))!;
    assert.equal((await reopened.before(keep))?.toString(), 'keep\n');
    assert.equal(reopened.get(Buffer.from('direct-new.txt').toString('base64'))!.before, null);

    // a second change to the same file keeps the first "before"
    await sb.run('echo again > keep.txt');
    await applyDirectly(vm, ws, reopened, (await readChangeSet(vm)).changes);
    assert.equal(await readFile(path.join(ws, 'keep.txt'), 'utf8'), 'again\n');
    assert.equal((await reopened.before(reopened.get(keep.path)!))?.toString(), 'keep\n');

    // revert everything: the host is back byte-for-byte, and the agent sees the host's versions
    for (const e of reopened.all()) await revertDirect(vm, ws, reopened, e.path);
    assert.deepEqual(await snapshot(ws), before);
    assert.equal(reopened.all().length, 0);
    assert.equal((await vm.sh('cat /workspace/keep.txt /workspace/dir/nested.txt; test -e /workspace/direct-new.txt || echo gone')).stdout.toString(), 'keep\nnested\ngone\n');
  });
});

/** True while pid is a live process (a zombie, killed and not yet reaped by the helper, is not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
