// Accept into a workspace whose disk fills up mid-accept (a 2 MiB tmpfs, a 3 MiB proposed file),
// against a real guest: the person's old file stays intact, the error says what happened, no
// temporary file is left, and the change is still pending (the same hash in the change set). Both
// ways a file is written: whole (up to the review cap) and streamed in chunks (above it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acceptChanges, type ApplyResult } from '../../extension/changes/apply';
import { readChangeSet, REVIEW_MAX_FILE_BYTES, type Change } from '../../extension/changes/changeSet';
import { readProposed } from '../../extension/changes/readBatch';
import { streamProposed } from '../../extension/changes/streamProposed';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { fault } from '../support/faults';
import { bootGuest, startHelper, tempDir } from '../vm/harness';

const AREA = 'accept';
let client: VmHostClient;
let vm: GuestVm;
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let mounted = false;

async function pending(): Promise<Change> {
  const c = (await readChangeSet(vm)).changes.find((x) => x.display === 'data.bin');
  assert.ok(c, 'data.bin is still in the change set');
  return c;
}

async function check(rs: ApplyResult[], before: Change): Promise<void> {
  const r = rs[0]!;
  assert.equal(r.outcome, 'refused');
  assert.match(r.outcome === 'refused' ? r.reason : '', /no space left on the disk: data\.bin was not written and your file is unchanged/);
  assert.equal(await readFile(path.join(ws, 'data.bin'), 'utf8'), 'the person\'s version\n', 'the old file is intact');
  assert.deepEqual((await readdir(ws)).sort(), ['data.bin', 'filler'], 'no temporary file left');
  assert.equal((await pending()).sha256, before.sha256, 'the change is still pending, unchanged');
}

before(
  async () => {
    root = await tempDir('fault-diskfull');
    ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', ws]);
    mounted = true;
    await writeFile(path.join(ws, 'data.bin'), 'the person\'s version\n');
    await writeFile(path.join(ws, 'filler'), Buffer.alloc(512 * 1024, 1));
    client = startHelper();
    vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'fault-diskfull');
    const r = await GuestSandbox.for(vm).run('head -c 3145728 /dev/urandom > data.bin', { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr.toString());
  },
  { timeout: 300_000 },
);

after(
  async () => {
    await vm?.stop().catch(() => undefined);
    await client?.dispose();
    if (mounted) execFileSync('umount', [ws]);
    await root?.dispose();
  },
  { timeout: 60_000 },
);

describe('faults: the disk fills up while accepting', { timeout: 600_000 }, () => {
  it('keeps the old file, says why, leaves no temporary file, keeps the change pending', { timeout: 300_000 }, async () => {
    await fault(AREA, 'disk-full-mid-accept', async () => {
      const c = await pending();
      const rs = await acceptChanges([c], { workspace: ws, since: 0, readProposed: (rel) => readProposed(vm, rel) });
      await check(rs, c);
    });
    await fault(AREA, 'disk-full-mid-stream', async () => {
      const c = await pending();
      // the same file through the streaming path (as if above the review cap), in 256 KiB chunks
      const asLarge = { ...c, size: REVIEW_MAX_FILE_BYTES + 1 };
      const rs = await acceptChanges([asLarge], {
        workspace: ws,
        since: 0,
        readProposed: () => Promise.reject(new Error('streamed files are never read whole')),
        streamProposed: (rel, fh) => streamProposed(vm, rel, fh, 256 * 1024),
      });
      await check(rs, c);
    });
  });
});
