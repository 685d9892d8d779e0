import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IllegalTransition, transition, type VmState } from '../../vm-host/vmState';

describe('VM state machine', () => {
  it('walks the happy path and measures boot time', () => {
    let s: VmState = { kind: 'stopped' };
    s = transition(s, { type: 'start', at: 1000 });
    assert.deepEqual(s, { kind: 'booting', since: 1000 });
    s = transition(s, { type: 'booted', at: 3500 });
    assert.deepEqual(s, { kind: 'ready', since: 3500, bootMs: 2500 });
    s = transition(s, { type: 'stop', at: 4000 });
    assert.equal(s.kind, 'stopping');
    s = transition(s, { type: 'exited' });
    assert.deepEqual(s, { kind: 'stopped' });
  });

  it('treats an exit while running as a failure, and lets a failed VM start again', () => {
    const failed = transition({ kind: 'ready', since: 0, bootMs: 1 }, { type: 'exited' });
    assert.equal(failed.kind, 'failed');
    assert.equal(transition(failed, { type: 'start', at: 5 }).kind, 'booting');
  });

  it('carries the reason of an unexpected exit', () => {
    const s = transition({ kind: 'ready', since: 0, bootMs: 1 }, { type: 'exited', reason: 'QEMU was killed by SIGKILL' });
    assert.deepEqual(s, { kind: 'failed', error: 'QEMU was killed by SIGKILL' });
    assert.deepEqual(transition({ kind: 'stopping', since: 0 }, { type: 'exited', reason: 'ignored' }), { kind: 'stopped' }, 'an asked-for stop is no failure');
  });

  it('refuses illegal transitions', () => {
    assert.throws(() => transition({ kind: 'stopped' }, { type: 'booted', at: 1 }), IllegalTransition);
    assert.throws(() => transition({ kind: 'ready', since: 0, bootMs: 1 }, { type: 'start', at: 1 }), /cannot 'start' while ready/);
    assert.throws(() => transition({ kind: 'stopped' }, { type: 'stop', at: 1 }), IllegalTransition);
  });

  it('returns the same object when nothing changes (no spurious change events)', () => {
    const stopping: VmState = { kind: 'stopping', since: 1 };
    assert.equal(transition(stopping, { type: 'stop', at: 2 }), stopping);
  });
});
