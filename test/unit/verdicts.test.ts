import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { AcceleratorVerdicts, VERDICT_TTL_MS } from '../../vm-host/acceleratorVerdicts';
import { BootTimes } from '../../vm-host/bootTimes';

describe('accelerator verdicts', () => {
  it('remembers an unusable accelerator per image key until it expires', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-verdict-'));
    try {
      const v = AcceleratorVerdicts.inCache(dir);
      assert.equal(await v.isUnusable('kvm', 'img1'), false);
      await v.markUnusable('kvm', 'img1', 'no sign of life');
      assert.equal(await v.isUnusable('kvm', 'img1'), true);
      assert.equal(await v.isUnusable('kvm', 'img2'), false, 'a new image is tried again');
      assert.equal(await v.isUnusable('hvf', 'img1'), false);
      assert.equal(await v.isUnusable('kvm', 'img1', Date.now() + VERDICT_TTL_MS + 1), false, 'verdicts expire');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('records usable verdicts (Check Setup probes) without calling them unusable', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-verdict-'));
    try {
      const v = AcceleratorVerdicts.inCache(dir);
      await v.markUsable('tcg', 'img1', 'a tiny boot reached init in 3.1 s');
      assert.equal(await v.isUnusable('tcg', 'img1'), false);
      assert.equal((await v.get('tcg', 'img1'))?.usable, true);
      await v.markUnusable('kvm', 'img1', 'the guest showed no sign of life within 20 s under KVM');
      assert.equal((await v.get('kvm', 'img1'))?.reason, 'the guest showed no sign of life within 20 s under KVM');
      assert.equal((await v.get('tcg', 'img1'))?.usable, true, 'one verdict does not overwrite another');
      assert.deepEqual((await readdir(dir)).sort(), ['unusable-accelerators.json'], 'written atomically: no temp file left');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a corrupt verdicts or boot-times file reads as empty (they are caches) and is replaced whole', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-verdict-'));
    try {
      await writeFile(path.join(dir, 'unusable-accelerators.json'), '{"kvm": {"imageKey": "img1", "at": 1');
      const v = AcceleratorVerdicts.inCache(dir);
      assert.equal(await v.isUnusable('kvm', 'img1'), false);
      await v.markUnusable('kvm', 'img1', 'x');
      assert.equal((JSON.parse(await readFile(path.join(dir, 'unusable-accelerators.json'), 'utf8')) as { kvm: { reason: string } }).kvm.reason, 'x');

      const b = BootTimes.inCache(dir);
      assert.equal(await b.last('tcg'), undefined);
      await b.record('tcg', 12_000);
      assert.equal(await b.last('tcg'), 12_000);
      assert.deepEqual(await b.timeoutFor('tcg'), { timeoutMs: 72_000, lastBootMs: 12_000 });
      assert.equal(await b.last('kvm'), undefined, 'per accelerator');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
