// Accept's checks on a real host folder, without a VM: symlink chains through the host and the
// change set (in any order of acceptance), writes through host symlinks, "runs on your machine"
// changes, the hash of what was reviewed, and the mode mask.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acceptChanges, applyChange, type ApplyResult } from '../../extension/changes/apply';
import type { Change } from '../../extension/changes/changeSet';
import { applyDirectly, DirectRecord } from '../../extension/changes/direct';
import { displayName } from '../../extension/changes/names';
import type { GuestVm } from '../../extension/guest/guestVm';
import { parseLinkTarget, VirtualTree } from '../../extension/changes/symlinks';

let root: string;
let ws: string;
let n = 0;

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const link = (p: string, target: string): Change => ({ path: Buffer.from(p), display: p, kind: 'symlink', target: Buffer.from(target) });
const added = (p: string | Buffer, content: string, mode = 0o644): Change => {
  const raw = typeof p === 'string' ? Buffer.from(p) : p;
  return { path: raw, display: displayName(raw), kind: 'added', mode, size: content.length, sha256: sha(content) };
};

/** A fresh workspace (inside root, next to an "outside" folder) for each test. */
async function fresh(): Promise<string> {
  ws = path.join(root, `ws${++n}`);
  await mkdir(ws);
  return ws;
}

function contentOf(changes: readonly Change[], bodies: Record<string, string>) {
  return (rel: Buffer) => {
    const b = bodies[rel.toString('latin1')];
    return b === undefined ? Promise.reject(new Error(`no content for ${rel.toString()}`)) : Promise.resolve(Buffer.from(b));
  };
}

async function acceptAll(changes: Change[], bodies: Record<string, string> = {}, confirm = false): Promise<ApplyResult[]> {
  return acceptChanges(changes, { workspace: ws, since: 0, readProposed: contentOf(changes, bodies), changeSet: changes, confirmRisky: confirm ? (r) => Promise.resolve(r.map((x) => x.change)) : undefined });
}

const outcomes = (rs: ApplyResult[]) => Object.fromEntries(rs.map((r) => [r.change.display, r.outcome]));

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'cowork-apply-'));
  await mkdir(path.join(root, 'outside'));
  await writeFile(path.join(root, 'outside', 'secret'), 'secret\n');
});
after(() => rm(root, { recursive: true, force: true }));

describe('symlinks: resolved through the host and the change set, in any order', () => {
  it('parses link targets: ".." only at the start, absolute only under /workspace', () => {
    assert.deepEqual(parseLinkTarget(Buffer.from('a/l'), Buffer.from('../x/y')), { absolute: false, up: 1, names: ['x', 'y'] });
    assert.deepEqual(parseLinkTarget(Buffer.from('l'), Buffer.from('/workspace/src')), { absolute: true, up: 0, names: ['src'] });
    assert.throws(() => parseLinkTarget(Buffer.from('l'), Buffer.from('x/../y')), /goes up/);
    assert.throws(() => parseLinkTarget(Buffer.from('l'), Buffer.from('/etc/passwd')), /outside the workspace/);
    assert.throws(() => parseLinkTarget(Buffer.from('l'), Buffer.from('')), /empty/);
  });

  it('refuses a chain of two harmless-looking links, in both batch orders and one at a time', async () => {
    // "r -> ." is the root itself; "s -> r/.." would then be the root's parent
    for (const order of [[link('r', '.'), link('s', 'r/..')], [link('s', 'r/..'), link('r', '.')]]) {
      await fresh();
      const rs = await acceptAll(order);
      assert.equal(outcomes(rs).s, 'refused', 's is refused whichever comes first');
      assert.ok(!(await readdir(ws)).includes('s'));
    }
    // "a -> b", "b -> ../.." from a folder: b alone already leaves
    await fresh();
    await mkdir(path.join(ws, 'd'));
    const rs = await acceptAll([link('d/a', 'b'), link('d/b', '../..')]);
    assert.deepEqual(outcomes(rs), { 'd/a': 'refused', 'd/b': 'refused' });
  });

  it('refuses a link through an agent folder link that goes up (a -> sub/x, sub -> ..)', async () => {
    for (const order of [[link('a', 'sub/x'), link('sub', '..')], [link('sub', '..'), link('a', 'sub/x')]]) {
      await fresh();
      const rs = await acceptAll(order);
      assert.deepEqual(outcomes(rs), { a: 'refused', sub: 'refused' });
    }
  });

  it('refuses a link that goes up from a folder that is really shallower (a host link to the root)', async () => {
    await fresh();
    await mkdir(path.join(ws, 'a', 'b'), { recursive: true });
    await symlink('../..', path.join(ws, 'a', 'b', 'c')); // the person's own link, to the root: inside
    const rs = await acceptAll([link('a/b/c/l', '../..')]);
    assert.equal(rs[0]!.outcome, 'refused');
  });

  it('refuses a link whose host counterpart a pending change replaces (any mix of accepted changes)', async () => {
    await fresh();
    await mkdir(path.join(ws, 'r'));
    // the agent turns r into "r -> ." and adds s -> r/..: accepting s alone, with r still a folder, looks inside
    const changes = [link('r', '.'), link('s', 'r/..')];
    const tree = new VirtualTree(ws, changes);
    await assert.rejects(tree.checkLink(Buffer.from('s'), Buffer.from('r/..')));
    const r = await applyChange(changes[1]!, { workspace: ws, since: 0, readProposed: () => Promise.reject(new Error('no')), tree });
    assert.equal(r.outcome, 'refused');
  });

  it('refuses a loop, a link into .git, and a link through a host link that leaves', async () => {
    await fresh();
    await symlink(path.join(root, 'outside'), path.join(ws, 'out'));
    await mkdir(path.join(ws, '.git'));
    const rs = await acceptAll([link('l1', 'l2'), link('l2', 'l1'), link('hooks', '.git/hooks'), link('via', 'out/secret')]);
    assert.deepEqual(outcomes(rs), { l1: 'refused', l2: 'refused', hooks: 'refused', via: 'refused' });
  });

  it('accepts links that stay inside, and rewrites /workspace targets relative to the real folder', async () => {
    await fresh();
    await mkdir(path.join(ws, 'src'));
    await writeFile(path.join(ws, 'src', 'main.ts'), 'x');
    const rs = await acceptAll([link('docs/main', '../src/main.ts'), link('abs', '/workspace/src'), link('here', 'src')]);
    assert.deepEqual(outcomes(rs), { 'docs/main': 'applied', abs: 'applied', here: 'applied' });
    assert.equal(await readlink(path.join(ws, 'docs', 'main')), '../src/main.ts');
    assert.equal(await readlink(path.join(ws, 'abs')), 'src');
  });
});

describe('accept: never through a host symlink that leaves the workspace', () => {
  it('refuses writing .claude/x when .claude -> ../dotfiles/claude, even when confirmed', async () => {
    await fresh();
    const dot = path.join(root, `dotfiles${n}`, 'claude');
    await mkdir(dot, { recursive: true });
    await symlink(path.relative(ws, dot), path.join(ws, '.claude'));
    const c = added('.claude/x', 'pwned\n');
    const rs = await acceptAll([c], { '.claude/x': 'pwned\n' }, true);
    assert.equal(rs[0]!.outcome, 'refused');
    assert.deepEqual(await readdir(dot), [], 'nothing written through the link');
  });

  it('refuses a write that lands in .git or a risky folder through a host folder link', async () => {
    await fresh();
    await mkdir(path.join(ws, '.git', 'hooks'), { recursive: true });
    await mkdir(path.join(ws, '.vscode'));
    await symlink('.git/hooks', path.join(ws, 'h'));
    await symlink('.vscode', path.join(ws, 'v'));
    const rs = await acceptAll([added('h/pre-commit', '#!/bin/sh\n'), added('v/tasks.json', '{}')], { 'h/pre-commit': '#!/bin/sh\n', 'v/tasks.json': '{}' });
    assert.deepEqual(outcomes(rs), { 'h/pre-commit': 'refused', 'v/tasks.json': 'refused' });
    assert.deepEqual(await readdir(path.join(ws, '.git', 'hooks')), []);
    assert.deepEqual(await readdir(path.join(ws, '.vscode')), []);
  });

  it('replaces a host symlink by the agent\'s folder only when both are accepted: the link is removed, never followed', async () => {
    await fresh();
    await symlink(path.join(root, 'outside'), path.join(ws, 'outlink'));
    const del: Change = { path: Buffer.from('outlink'), display: 'outlink', kind: 'deleted', type: 'symlink' };
    const x = added('outlink/x', 'mine\n');
    assert.equal((await acceptAll([x], { 'outlink/x': 'mine\n' }))[0]!.outcome, 'refused', 'alone: it would write through the link');
    const rs = await acceptAll([del, x], { 'outlink/x': 'mine\n' });
    assert.deepEqual(outcomes(rs), { outlink: 'applied', 'outlink/x': 'applied' });
    assert.ok((await lstat(path.join(ws, 'outlink'))).isDirectory());
    assert.deepEqual(await readdir(path.join(root, 'outside')), ['secret']);
  });
});

describe('accept: what runs on the host, what was reviewed, which mode', () => {
  it('never writes a "runs on your machine" change without a confirmation naming it', async () => {
    await fresh();
    const changes = [added('.vscode/tasks.json', '{}'), added('.envrc', 'curl x|sh'), added('ok.txt', 'ok'), added('run.sh', 'echo', 0o755)];
    const bodies = { '.vscode/tasks.json': '{}', '.envrc': 'curl x|sh', 'ok.txt': 'ok', 'run.sh': 'echo' };
    const asked: string[] = [];
    const rs = await acceptChanges(changes, {
      workspace: ws,
      since: 0,
      readProposed: contentOf(changes, bodies),
      confirmRisky: (risky) => {
        asked.push(...risky.map((r) => r.change.display));
        return Promise.resolve([]);
      },
    });
    assert.deepEqual(asked.sort(), ['.envrc', '.vscode/tasks.json', 'run.sh']);
    assert.deepEqual(outcomes(rs), { '.vscode/tasks.json': 'refused', '.envrc': 'refused', 'ok.txt': 'applied', 'run.sh': 'refused' });
    assert.ok(!(await readdir(ws)).includes('.envrc') && !(await readdir(ws)).includes('run.sh'));
    await assert.rejects(lstat(path.join(ws, '.vscode', 'tasks.json')), /ENOENT/);
    const confirmed = await acceptAll(changes.filter((c) => c.display !== 'ok.txt'), bodies, true);
    assert.deepEqual(Object.values(outcomes(confirmed)), ['applied', 'applied', 'applied']);
  });

  it('a new link to an executable file (on the host or in the change set) runs on your machine', async () => {
    await fresh();
    await mkdir(path.join(ws, 'scripts'));
    await writeFile(path.join(ws, 'scripts', 'lint.sh'), 'echo lint\n', { mode: 0o755 });
    await writeFile(path.join(ws, 'notes.txt'), 'plain\n', { mode: 0o644 });
    // the red-team's case: an existing executable, reached through a path that tools run on their own
    const changes = [link('.venv/bin/python', '../../scripts/lint.sh'), added('tool.sh', 'echo', 0o755), link('bin/tool', '../tool.sh'), link('readme-link', 'notes.txt')];
    const asked: string[] = [];
    const rs = await acceptChanges(changes, {
      workspace: ws,
      since: 0,
      readProposed: contentOf(changes, { 'tool.sh': 'echo' }),
      changeSet: changes,
      confirmRisky: (risky) => {
        asked.push(...risky.map((r) => r.change.display));
        return Promise.resolve([]);
      },
    });
    assert.deepEqual(asked.sort(), ['.venv/bin/python', 'bin/tool', 'tool.sh']);
    assert.deepEqual(outcomes(rs), { '.venv/bin/python': 'refused', 'tool.sh': 'refused', 'bin/tool': 'refused', 'readme-link': 'applied' });
    await assert.rejects(lstat(path.join(ws, '.venv', 'bin', 'python')), /ENOENT/);
  });

  it('refuses bytes other than the ones reviewed ("changed since you reviewed it")', async () => {
    await fresh();
    await writeFile(path.join(ws, 'f.txt'), 'old\n');
    const c = added('f.txt', 'reviewed\n');
    const rs = await acceptAll([c], { 'f.txt': 'swapped after the scan\n' });
    assert.equal(rs[0]!.outcome, 'refused');
    assert.match(rs[0]!.outcome === 'refused' ? rs[0]!.reason : '', /changed since you reviewed it — look again/);
    assert.equal(await readFile(path.join(ws, 'f.txt'), 'utf8'), 'old\n');
    assert.deepEqual(await readdir(ws), ['f.txt'], 'no temporary file left');
  });

  it('writes modes within 0777 & ~umask: setuid, setgid and sticky bits never reach the host', async () => {
    await fresh();
    const old = process.umask(0o022);
    try {
      const rs = await acceptAll([added('suid', 'x', 0o4755), added('sgid', 'y', 0o2775), added('sticky', 'z', 0o1666)], { suid: 'x', sgid: 'y', sticky: 'z' }, true);
      assert.deepEqual(Object.values(outcomes(rs)), ['applied', 'applied', 'applied']);
      assert.equal((await stat(path.join(ws, 'suid'))).mode & 0o7777, 0o755);
      assert.equal((await stat(path.join(ws, 'sgid'))).mode & 0o7777, 0o755);
      assert.equal((await stat(path.join(ws, 'sticky'))).mode & 0o7777, 0o644);
    } finally {
      process.umask(old);
    }
  });

  it('writes a non-UTF-8 or RLO name to its exact raw path', async () => {
    await fresh();
    const latin = Buffer.from([0x63, 0x61, 0x66, 0xe9]);
    const rlo = Buffer.from('x\u202Etxt.sh');
    const rs = await acceptAll([added(latin, 'l'), added(rlo, 'r')], { [latin.toString('latin1')]: 'l', [rlo.toString('latin1')]: 'r' });
    assert.deepEqual(rs.map((r) => r.outcome), ['applied', 'applied']);
    const names = await readdir(ws, { encoding: 'buffer' });
    assert.ok(names.some((x) => x.equals(latin)));
    assert.ok(names.some((x) => x.equals(rlo)));
    assert.equal(rs[0]!.change.display, 'caf\\xE9');
    assert.equal(rs[1]!.change.display, 'x\\u202Etxt.sh');
  });
});

describe('direct mode: what it already wrote', () => {
  it('neither reads nor writes a version it wrote before, so the person\'s later edit stays', async () => {
    await fresh();
    await writeFile(path.join(ws, 'a.txt'), 'agent\n');
    const record = await DirectRecord.open(path.join(ws, '..', `record${n}`));
    await record.rememberBefore(ws, Buffer.from('a.txt'));
    record.noteWritten(Buffer.from('a.txt'), sha('agent\n'));
    await writeFile(path.join(ws, 'a.txt'), 'the person edited it afterwards\n');
    let guestCalls = 0;
    const guest = new Proxy({}, { get: () => { guestCalls++; throw new Error('the guest was asked for something'); } }) as GuestVm;
    const change: Change = { path: Buffer.from('a.txt'), display: 'a.txt', kind: 'modified', mode: 0o644, size: 6, sha256: sha('agent\n') };
    const r = await applyDirectly(guest, ws, record, [change]);
    assert.deepEqual([r.applied.length, r.refused.length, guestCalls], [0, 0, 0]);
    assert.equal(await readFile(path.join(ws, 'a.txt'), 'utf8'), 'the person edited it afterwards\n');
    const risky = await applyDirectly(guest, ws, record, [added('.envrc', 'x')]);
    assert.deepEqual(risky.refused.map((x) => x.code), ['runs-on-host'], 'a runs-on-host change waits, unread');
    assert.equal(guestCalls, 0);
  });
});
