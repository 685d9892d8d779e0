// Live tool output in the panel (issue 11): past the limit it keeps the head and the tail, and
// what it shows keeps changing with every chunk (the view re-renders on `seen`).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appendLive, LIVE_HEAD_CHARS, LIVE_MAX_CHARS, type LiveOutput } from '../../extension/agent/tools/output';
import { applyToolOutput, applyToolStart, emptyView } from '../../webview/view/transcriptModel';

describe('live tool output', () => {
  it('keeps everything up to the limit', () => {
    const live: LiveOutput = { text: '', seen: 0 };
    appendLive(live, 'a'.repeat(100));
    appendLive(live, 'b');
    assert.equal(live.text, 'a'.repeat(100) + 'b');
    assert.equal(live.seen, 101);
  });

  it('past the limit keeps the head and the latest tail, and says how much is left out', () => {
    const live: LiveOutput = { text: '', seen: 0 };
    for (let i = 0; i < 100; i++) appendLive(live, `line ${String(i).padStart(4, '0')} ${'x'.repeat(490)}\n`);
    assert.ok(live.text.startsWith('line 0000 '), 'the head is kept');
    assert.ok(live.text.endsWith(`line 0099 ${'x'.repeat(490)}\n`), 'the tail is the latest output');
    assert.ok(live.text.length <= LIVE_MAX_CHARS + 100);
    assert.match(live.text, /\[… [\d,]+ characters not shown …\]/);
    const left = Number(/\[… ([\d,]+) characters/.exec(live.text)![1]!.replace(/,/g, ''));
    assert.equal(left + LIVE_HEAD_CHARS + (LIVE_MAX_CHARS - LIVE_HEAD_CHARS), live.seen);
  });

  it('a card keeps updating after 20,000 characters', () => {
    const view = emptyView();
    applyToolStart(view, 't', 'bash', { command: 'yes' });
    const shown: string[] = [];
    let sent = 0;
    for (let i = 0; i < 60; i++) {
      const chunk = `${i} ${'y'.repeat(995)}\n`;
      sent += chunk.length;
      applyToolOutput(view, 't', chunk);
      shown.push(view.cards.get('t')!.output);
    }
    const card = view.cards.get('t')!;
    assert.equal(card.streamed!.seen, sent);
    assert.notEqual(shown.at(-1), shown.at(-2), 'the shown text changes with each chunk');
    assert.ok(card.output.includes('59 yyy'), 'the latest line is shown');
    assert.ok(card.output.startsWith('0 yyy'), 'the first line is still shown');
  });
});
