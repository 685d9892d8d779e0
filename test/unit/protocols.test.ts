import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentEvent } from '../../extension/guest/agentProtocol';
import { Requests, ResponseLine, VmHostEvent, VmStartParams } from '../../extension/protocol/vmHost';
import { HostToWebview, WebviewToHost } from '../../extension/protocol/webview';

const start = { vmId: 'a-1', workspace: '/w', sessionDisk: '/s.qcow2', cpus: 1, memoryMiB: 1024, diskGiB: 4, accelerator: 'auto' };

describe('vm-host protocol', () => {
  it('accepts a valid vm.start', () => {
    assert.equal(VmStartParams.parse(start).vmId, start.vmId);
  });
  it('rejects hostile or malformed vm.start parameters', () => {
    for (const bad of [{ ...start, vmId: '../x' }, { ...start, vmId: 'a b' }, { ...start, cpus: 0 }, { ...start, memoryMiB: 10 }, { ...start, accelerator: 'xen' }, { ...start, workspace: '' }]) {
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
  const vm = { state: 'ready', accelerator: 'tcg' };
  const change = { path: Buffer.from('a.py').toString('base64'), display: 'a.py', kind: 'modified', conflicted: false, added: 1, removed: 0, lines: ['@@ -1,0 +1,1 @@', '+x'], truncated: false };
  const toWebview: Record<HostToWebview['type'], { valid: unknown; invalid: unknown }> = {
    state: { valid: { type: 'state', vm, trusted: true, settingsProblem: null }, invalid: { type: 'state', vm: { state: 'ready' } } },
    commandResult: { valid: { type: 'commandResult', command: 'ls', output: 'a', exit: 'exit 0' }, invalid: { type: 'commandResult', command: 'ls' } },
    tasks: { valid: { type: 'tasks', tasks: [{ id: 'abc123', title: 't', createdAt: 1, state: 'idle', changes: 2 }], selected: null }, invalid: { type: 'tasks', tasks: [{ id: 'abc123', title: 't', createdAt: 1, state: 'sleeping' }], selected: null } },
    transcript: { valid: { type: 'transcript', taskId: 't', events: [{ at: 1, type: 'user', text: 'hi' }], vm }, invalid: { type: 'transcript', taskId: 't', events: [{ type: 'user' }], vm } },
    live: { valid: { type: 'live', taskId: 't', event: { type: 'tool_output', id: 'x', chunk: 'a', stream: 'stdout' } }, invalid: { type: 'live', taskId: 't', event: { type: 'tool_output', id: 'x', chunk: 'a', stream: 'tty' } } },
    taskVm: { valid: { type: 'taskVm', taskId: 't', vm }, invalid: { type: 'taskVm', taskId: 't', vm: { state: 'exploded' } } },
    blocked: { valid: { type: 'blocked', taskId: 't', items: [{ host: 'a.example', port: 443, rule: 'default-deny', time: 'now', canAllow: true }], total: 1 }, invalid: { type: 'blocked', taskId: 't', items: [{ host: 'a.example', port: 443 }], total: 1 } },
    changes: { valid: { type: 'changes', taskId: 't', files: [change] }, invalid: { type: 'changes', taskId: 't', files: [{ ...change, kind: 'renamed' }] } },
    vmUsage: { valid: { type: 'vmUsage', taskId: 't', usage: { cpuPercent: 12.5, rssBytes: 1e9, diskBytes: 1e6 } }, invalid: { type: 'vmUsage', taskId: 't', usage: { cpuPercent: -1 } } },
    fileMatches: { valid: { type: 'fileMatches', requestId: 3, paths: ['src/a.ts'] }, invalid: { type: 'fileMatches', requestId: 3, paths: Array.from({ length: 13 }, (_, i) => `f${i}`) } },
    insertPrompt: { valid: { type: 'insertPrompt', text: '@src/a.ts:3-9 ' }, invalid: { type: 'insertPrompt', text: 'x'.repeat(4097) } },
    notice: { valid: { type: 'notice', message: 'Only PNG, JPEG, GIF and WebP images can be sent.' }, invalid: { type: 'notice' } },
  };
  const toHost: Record<WebviewToHost['type'], { valid: unknown; invalid: unknown }> = {
    ready: { valid: { type: 'ready' }, invalid: { type: 'ready!' } },
    invalidMessage: { valid: { type: 'invalidMessage', error: 'tasks: bad' }, invalid: { type: 'invalidMessage', error: 'x'.repeat(2001) } },
    startVm: { valid: { type: 'startVm' }, invalid: { type: 'startvm' } },
    stopVm: { valid: { type: 'stopVm' }, invalid: { type: 'stopVM' } },
    delegate: { valid: { type: 'delegate', prompt: 'fix it', model: 'claude-haiku-5-5', images: [{ mediaType: 'image/png', data: 'iVBORw0KGgo=' }] }, invalid: { type: 'delegate', prompt: 'fix it', images: [{ mediaType: 'image/svg+xml', data: 'PHN2Zz4=' }] } },
    runCommand: { valid: { type: 'runCommand', command: 'ls' }, invalid: { type: 'runCommand', command: '' } },
    selectTask: { valid: { type: 'selectTask', taskId: 't' }, invalid: { type: 'selectTask', taskId: 1 } },
    stopTask: { valid: { type: 'stopTask', taskId: 't' }, invalid: { type: 'stopTask' } },
    followUp: { valid: { type: 'followUp', taskId: 't', text: 'more' }, invalid: { type: 'followUp', taskId: 't', text: 'x'.repeat(100_001) } },
    findFiles: { valid: { type: 'findFiles', requestId: 1, query: 'src/a' }, invalid: { type: 'findFiles', requestId: 1, query: 'x'.repeat(201) } },
    attachEditor: { valid: { type: 'attachEditor' }, invalid: { type: 'attachEditor!' } },
    openDiff: { valid: { type: 'openDiff', taskId: 't', path: 'YS5weQ==' }, invalid: { type: 'openDiff', taskId: 't', path: '' } },
    acceptFile: { valid: { type: 'acceptFile', taskId: 't', path: 'YS5weQ==' }, invalid: { type: 'acceptFile', taskId: 't' } },
    discardFile: { valid: { type: 'discardFile', taskId: 't', path: 'YS5weQ==' }, invalid: { type: 'discardFile', path: 'YS5weQ==' } },
    acceptAll: { valid: { type: 'acceptAll', taskId: 't' }, invalid: { type: 'acceptAll' } },
    acceptFolder: { valid: { type: 'acceptFolder', taskId: 't', folder: 'node_modules' }, invalid: { type: 'acceptFolder', taskId: 't', folder: '' } },
    discardFolder: { valid: { type: 'discardFolder', taskId: 't', folder: '.venv' }, invalid: { type: 'discardFolder', taskId: 't' } },
    discardAll: { valid: { type: 'discardAll', taskId: 't' }, invalid: { type: 'discardAll', taskId: null } },
    revealChanges: { valid: { type: 'revealChanges', taskId: 't' }, invalid: { type: 'revealChanges' } },
    openInEditor: { valid: { type: 'openInEditor', taskId: 't' }, invalid: { type: 'openInEditor' } },
    allowDomain: { valid: { type: 'allowDomain', taskId: 't', host: 'pypi.org' }, invalid: { type: 'allowDomain', taskId: 't', host: 'evil.example/../x' } },
  };

  it('validates every message from the host to the webview', () => {
    for (const [type, { valid, invalid }] of Object.entries(toWebview)) {
      assert.ok(HostToWebview.safeParse(valid).success, `${type}: the valid example is accepted`);
      assert.equal(HostToWebview.safeParse(invalid).success, false, `${type}: the invalid example is refused`);
    }
  });

  it('validates every message from the webview to the host', () => {
    for (const [type, { valid, invalid }] of Object.entries(toHost)) {
      assert.ok(WebviewToHost.safeParse(valid).success, `${type}: the valid example is accepted`);
      assert.equal(WebviewToHost.safeParse(invalid).success, false, `${type}: the invalid example is refused`);
    }
    assert.equal(WebviewToHost.safeParse({ type: 'eval', code: 'x' }).success, false);
  });

  it('covers every message type of the protocol', () => {
    const typesOf = (u: { options: readonly { shape: { type: { value: unknown } } }[] }): string[] => u.options.map((o) => String(o.shape.type.value)).sort();
    assert.deepEqual(Object.keys(toWebview).sort(), typesOf(HostToWebview as never));
    assert.deepEqual(Object.keys(toHost).sort(), typesOf(WebviewToHost as never));
  });
});
