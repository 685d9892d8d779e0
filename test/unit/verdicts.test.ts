import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { AcceleratorVerdicts, VERDICT_TTL_MS } from '../../vm-host/acceleratorVerdicts';

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
});
