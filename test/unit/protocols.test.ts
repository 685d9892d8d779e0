import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentEvent } from '../../extension/guest/agentProtocol';
import { Requests, ResponseLine, VmHostEvent, VmStartParams } from '../../extension/protocol/vmHost';
import { HostToWebview, WebviewToHost } from '../../extension/protocol/webview';

const start = { vmId: 'a-1', workspace: '/w', sessionDisk: '/s.qcow2', cpus: 1, memoryMiB: 1024, diskGiB: 4, accelerator: 'auto' };

describe('vm-host protocol', () => {
  it('accepts a valid vm.start and defaults the mode to review', () => {
    assert.equal(VmStartParams.parse(start).mode, 'review');
  });
  it('rejects hostile or malformed vm.start parameters', () => {
    for (const bad of [{ ...start, vmId: '../x' }, { ...start, vmId: 'a b' }, { ...start, cpus: 0 }, { ...start, memoryMiB: 10 }, { ...start, accelerator: 'xen' }, { ...start, mode: 'yolo' }]) {
      assert.equal(VmStartParams.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
  it('declares params and result for every method', () => {
    for (const [name, [params, result]] of Object.entries(Requests)) {
      assert.ok(params && result, name);
    }
  });
  it('validates responses and events', () => {
    assert.ok(ResponseLine.safeParse({ id: 1, ok: true, result: {} }).success);
    assert.ok(ResponseLine.safeParse({ id: 1, ok: false, error: { code: 'x', message: 'y' } }).success);
    assert.equal(ResponseLine.safeParse({ id: 1, ok: false }).success, false);
    assert.ok(VmHostEvent.safeParse({ event: 'vm.state', vmId: 'a', state: 'ready' }).success);
    assert.equal(VmHostEvent.safeParse({ event: 'vm.state', vmId: 'a', state: 'exploded' }).success, false);
  });
});

describe('guest agent protocol', () => {
  it('accepts what the agent writes and nothing else', () => {
    assert.ok(AgentEvent.safeParse({ ev: 'exit', id: 1, code: 0, signal: null, timedOut: false, ms: 3 }).success);
    assert.ok(AgentEvent.safeParse({ ev: 'out', id: 1, fd: 2, b64: 'aGk=' }).success);
    assert.equal(AgentEvent.safeParse({ ev: 'out', id: 1, fd: 3, b64: '' }).success, false);
    assert.equal(AgentEvent.safeParse({ ev: 'exit', id: '1', code: 0 }).success, false);
    assert.equal(AgentEvent.safeParse({ ev: '__proto__' }).success, false);
  });
});

describe('webview protocol', () => {
  it('validates both directions', () => {
    assert.ok(WebviewToHost.safeParse({ type: 'ready' }).success);
    assert.ok(WebviewToHost.safeParse({ type: 'runCommand', command: 'ls' }).success);
    assert.equal(WebviewToHost.safeParse({ type: 'runCommand', command: '' }).success, false);
    assert.equal(WebviewToHost.safeParse({ type: 'eval', code: 'x' }).success, false);
    assert.ok(HostToWebview.safeParse({ type: 'state', vm: { state: 'ready', accelerator: 'tcg' }, trusted: true, settingsProblem: null }).success);
    assert.equal(HostToWebview.safeParse({ type: 'state', vm: { state: 'ready' } }).success, false);
  });
});
