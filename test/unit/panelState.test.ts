// The panel's state that survives a hidden or reloaded view (issue 15): the host keeps the blocked
// requests (judged: can they be allowed here?) and the streamed tool output (stdout and stderr in
// arrival order), and a fresh view rebuilt from that snapshot shows what the old one showed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appendOutput, emptyOutput, outputPieces, outputText } from '../../extension/panel/liveOutput';
import { allowability, TaskPanelState } from '../../extension/panel/taskPanelState';
import { LiveSnapshot } from '../../extension/protocol/webview';
import { applyEvent, applyTextDelta, applyToolOutput, applyToolSnapshot, applyToolStart, emptyView, resultFlags } from '../../webview/view/transcriptModel';

const own = new Set(['192.168.7.7', '127.0.0.1']);
const rec = (host: string, rule: string, reason?: string) => ({ time: 't', task: 'x', via: 'connect' as const, host, port: 443, allowed: false, rule, reason, bytesUp: 0, bytesDown: 0 });

describe('streamed tool output', () => {
  it('keeps stdout and stderr interleaved in arrival order, each piece marked', () => {
    const out = emptyOutput();
    appendOutput(out, 'one\n', 'stdout');
    appendOutput(out, 'warn\n', 'stderr');
    appendOutput(out, 'two\n', 'stdout');
    appendOutput(out, 'three\n', 'stdout');
    assert.deepEqual(outputPieces(out), [
      { stream: 'stdout', text: 'one\n' },
      { stream: 'stderr', text: 'warn\n' },
      { stream: 'stdout', text: 'two\nthree\n' },
    ]);
    assert.equal(outputText(out), 'one\nwarn\ntwo\nthree\n');
  });

  it('past the limit keeps the head and the latest tail with the streams, and counts what it left out', () => {
    const out = emptyOutput();
    let sent = 0;
    for (let i = 0; i < 200; i++) {
      const chunk = `${i} ${'x'.repeat(200)}\n`;
      sent += chunk.length;
      appendOutput(out, chunk, i % 2 ? 'stderr' : 'stdout', 5000, 1000);
    }
    const pieces = outputPieces(out);
    assert.equal(out.seen, sent);
    const kept = [...out.head, ...out.tail].reduce((n, p) => n + p.text.length, 0);
    assert.equal(kept + out.omitted, sent, 'kept + left out = received');
    assert.ok(kept <= 5000);
    assert.ok(pieces[0]!.text.startsWith('0 x'), 'the head is the first output');
    assert.ok(pieces.at(-1)!.text.startsWith('199 x') && pieces.at(-1)!.stream === 'stderr', 'the tail is the latest output, still marked');
    assert.ok(pieces.some((p) => p.stream === 'omitted' && /characters not shown/.test(p.text)));
  });
});

describe('which blocked requests the person may allow', () => {
  it('offers Allow for a name that is only not on the list', () => {
    assert.deepEqual(allowability(rec('pypi.org', 'default-deny'), own), { canAllow: true });
    assert.deepEqual(allowability(rec('203.0.114.9', 'ip-literal'), own), { canAllow: true });
  });
  it('never for the model API, metadata, loopback, link-local or this machine, and says why', () => {
    const cases: [string, string, RegExp][] = [
      ['api.anthropic.com', 'model-api:api.anthropic.com', /model API/],
      ['169.254.169.254', 'ip-literal', /metadata/],
      ['127.0.0.1', 'ip-literal', /loopback/],
      ['169.254.3.4', 'ip-literal', /link-local/],
      ['192.168.7.7', 'ip-literal', /this machine/],
      ['evil.example', 'denied:evil.example', /denied list/],
      ['rebind.example', 'address', /may never reach/],
    ];
    for (const [host, rule, why] of cases) {
      const a = allowability(rec(host, rule), own);
      assert.equal(a.canAllow, false, host);
      assert.match((a as { why: string }).why, why, host);
    }
  });
});

describe('a task\'s panel state rebuilt after a reload', () => {
  it('a fresh view from the host snapshot shows the same cards, output and live text', () => {
    const ps = new TaskPanelState(() => own);
    const old = emptyView();
    const events = [
      { at: 1, type: 'user' as const, text: 'go' },
      { at: 2, type: 'assistant' as const, content: [{ type: 'tool_use', id: 't1', name: 'bash', input: { command: 'make' } }] },
    ];
    for (const e of events) {
      applyEvent(old, e);
      ps.onLive({ type: 'transcript', event: e });
    }
    for (const [chunk, stream] of [['cc a.c\n', 'stdout'], ['a.c:1: warning\n', 'stderr'], ['ld\n', 'stdout']] as const) {
      applyToolStart(old, 't1', 'bash', { command: 'make' });
      ps.onLive({ type: 'tool_start', id: 't1', name: 'bash', input: { command: 'make' } });
      applyToolOutput(old, 't1', chunk, stream);
      ps.onLive({ type: 'tool_output', id: 't1', chunk, stream });
    }
    ps.onEgress(rec('pypi.org', 'default-deny'));
    ps.onEgress(rec('169.254.169.254', 'ip-literal'));
    // the snapshot goes through the protocol's validation as the webview does
    const snap = LiveSnapshot.parse(JSON.parse(JSON.stringify(ps.live())));
    const fresh = emptyView();
    for (const e of events) applyEvent(fresh, e);
    for (const t of snap.tools) applyToolSnapshot(fresh, t);
    const a = old.cards.get('t1')!;
    const b = fresh.cards.get('t1')!;
    assert.equal(b.running, true);
    assert.equal(b.output, a.output);
    assert.deepEqual(b.streamed, a.streamed);
    assert.equal(b.output, 'cc a.c\na.c:1: warning\nld\n');
    const blocked = ps.blocked();
    assert.deepEqual(blocked.items.map((r) => [r.host, r.canAllow]), [['pypi.org', true], ['169.254.169.254', false]]);
    // the result ends the card; streamed text is kept for a reload after the task
    ps.onLive({ type: 'transcript', event: { at: 3, type: 'tool_result', toolUseId: 't1', name: 'bash', content: 'x\nThe command timed out after 600 s and was killed.', isError: true, exitCode: null } });
    ps.onLive({ type: 'text_delta', text: 'Build' });
    ps.onLive({ type: 'text_delta', text: 'ing' });
    const after = ps.live();
    assert.equal(after.text, 'Building');
    assert.equal(after.tools[0]!.running, false);
    const v = emptyView();
    for (const e of events) applyEvent(v, e);
    applyEvent(v, { at: 3, type: 'tool_result', toolUseId: 't1', name: 'bash', content: 'x\nThe command timed out after 600 s and was killed.', isError: true, exitCode: null });
    for (const t of after.tools) applyToolSnapshot(v, t);
    applyTextDelta(v, after.text);
    assert.equal(v.cards.get('t1')!.running, false);
    assert.deepEqual(resultFlags(v.cards.get('t1')!), ['timed out']);
    assert.deepEqual(v.items.at(-1), { kind: 'assistant', text: 'Building', live: true });
  });
});

describe('blocked requests after a window reload', () => {
  it('come back from the task\'s egress audit log (denials only; a cut line is skipped)', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-panel-'));
    const file = path.join(dir, 'vm.jsonl');
    await writeFile(file, [JSON.stringify(rec('blocked.example', 'default-deny', 'not on the allowed list')), JSON.stringify({ ...rec('pypi.org', 'allowed:pypi.org'), allowed: true }), '{"host": "cut', JSON.stringify(rec('127.0.0.1', 'ip-literal'))].join('\n') + '\n');
    const ps = new TaskPanelState(() => own);
    ps.loadAudit(file);
    assert.deepEqual(ps.blocked().items.map((r) => [r.host, r.canAllow]), [['blocked.example', true], ['127.0.0.1', false]]);
    ps.loadAudit(path.join(dir, 'missing.jsonl'));
    assert.equal(ps.blocked().total, 2);
  });
});

describe('generated folders', () => {
  it('are found by a node_modules or .venv segment, at any depth, and only for what is inside them', async () => {
    const { generatedFolder } = await import('../../extension/panel/generated');
    assert.equal(generatedFolder('node_modules/a/b.js'), 'node_modules');
    assert.equal(generatedFolder('web/node_modules/x'), 'web/node_modules');
    assert.equal(generatedFolder('.venv/bin/python'), '.venv');
    assert.equal(generatedFolder('node_modules'), undefined, 'a file named node_modules is a file');
    assert.equal(generatedFolder('src/node_modules_list.txt'), undefined);
  });
});
