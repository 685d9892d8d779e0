import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyEvent, applyTextDelta, applyToolOutput, applyToolStart, describeTool, emptyView } from '../../webview/view/transcriptModel';

describe('panel view model', () => {
  it('folds streaming text, tool calls and results into one view', () => {
    const v = emptyView();
    applyEvent(v, { at: 1, type: 'user', text: 'fix it' });
    applyTextDelta(v, 'Look');
    applyTextDelta(v, 'ing…');
    assert.deepEqual(v.items.at(-1), { kind: 'assistant', text: 'Looking…', live: true });
    applyEvent(v, { at: 2, type: 'assistant', content: [{ type: 'text', text: 'Looking…' }, { type: 'tool_use', id: 't1', name: 'bash', input: { command: 'ls -la\necho' } }] });
    assert.equal(v.items.filter((i) => i.kind === 'assistant').length, 1, 'the live text is replaced by the final one');
    applyToolStart(v, 't1', 'bash', { command: 'ls -la' });
    applyToolOutput(v, 't1', 'a.txt\n');
    const card = v.items.find((i) => i.kind === 'tool');
    assert.ok(card && card.kind === 'tool' && card.card.running && card.card.output === 'a.txt\n');
    applyEvent(v, { at: 3, type: 'tool_result', toolUseId: 't1', name: 'bash', content: 'a.txt', isError: false, exitCode: 0, durationMs: 40 });
    assert.ok(card.kind === 'tool' && !card.card.running && card.card.result?.exitCode === 0);
    applyEvent(v, { at: 4, type: 'usage', usage: { input: 10, output: 5, cacheWrite: 100, cacheRead: 0 }, costUsd: 0.01 });
    applyEvent(v, { at: 5, type: 'usage', usage: { input: 2, output: 1, cacheWrite: 0, cacheRead: 100 }, costUsd: 0.001 });
    assert.deepEqual(v.tokens, { input: 12, output: 6, cacheWrite: 100, cacheRead: 100 });
    applyEvent(v, { at: 6, type: 'plan', items: [{ content: 'a', status: 'completed' }] });
    assert.equal(v.plan.length, 1);
    applyTextDelta(v, 'partial');
    applyEvent(v, { at: 7, type: 'stopped', reason: 'The person stopped the task.' });
    assert.equal(v.items.at(-1)?.kind, 'stopped');
    assert.ok(!v.items.some((i) => i.kind === 'assistant' && i.live), 'no half-streamed text after a stop');
  });

  it('describes tool calls by what they do', () => {
    assert.equal(describeTool({ name: 'bash', input: { command: 'npm test\nmore' } }), '$ npm test');
    assert.equal(describeTool({ name: 'str_replace_based_edit_tool', input: { command: 'view', path: '/workspace/a' } }), 'view /workspace/a');
    assert.equal(describeTool({ name: 'bash', input: { restart: true } }), 'restart shell');
    assert.equal(describeTool({ name: 'str_replace_based_edit_tool', input: { command: { evil: 1 } } }), 'edit ');
  });
});
