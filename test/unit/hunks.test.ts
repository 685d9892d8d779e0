import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applySelectedHunks, hunks, unifiedDiff } from '../../extension/changes/hunks';

const host = ['import re', '', 'def slugify(text):', '    text = text.strip().lower()', '    return re.sub(r"[^a-z0-9]+", "-", text)', '', 'print(slugify("x"))', ''].join('\n');
const agent = ['import re', 'import unicodedata', '', 'def slugify(text):', '    text = unicodedata.normalize("NFKD", text)', '    text = text.strip().lower()', '    return re.sub(r"[^a-z0-9]+", "-", text)', ''].join('\n');

describe('line hunks and partial accept', () => {
  it('finds each changed run with its place on both sides', () => {
    assert.deepEqual(hunks(host, agent), [
      { oldStart: 1, oldLines: 0, newStart: 1, newLines: 1 },
      { oldStart: 3, oldLines: 0, newStart: 4, newLines: 1 },
      { oldStart: 5, oldLines: 2, newStart: 7, newLines: 0 },
    ]);
  });

  it('applies only the hunks a selection touches, and keeps every other byte of the host', () => {
    const r = applySelectedHunks(host, agent, [{ start: 1, end: 1 }]);
    assert.equal(r.applied, 1);
    assert.equal(r.total, 3);
    assert.equal(r.text, host.replace('import re\n', 'import re\nimport unicodedata\n'));
  });

  it('treats a pure deletion as touched by the lines around it', () => {
    const r = applySelectedHunks(host, agent, [{ start: 7, end: 7 }]);
    assert.equal(r.applied, 1);
    assert.equal(r.text, host.replace('\nprint(slugify("x"))\n', ''));
  });

  it('gives the agent version exactly when every hunk is selected, and the host version when none is', () => {
    assert.equal(applySelectedHunks(host, agent, [{ start: 0, end: 100 }]).text, agent);
    assert.equal(applySelectedHunks(host, agent, []).text, host);
  });

  it('handles a last line without a newline and CRLF text', () => {
    assert.equal(applySelectedHunks('a\r\nb', 'a\r\nc', [{ start: 1, end: 1 }]).text, 'a\r\nc');
    assert.equal(applySelectedHunks('a\nb', 'a\nb\n', [{ start: 1, end: 1 }]).text, 'a\nb\n');
  });

  it('prints a unified diff with counts, capped at maxLines', () => {
    const d = unifiedDiff(host, agent);
    assert.equal(d.added, 2);
    assert.equal(d.removed, 2);
    assert.equal(d.lines[0], '@@ -1,7 +1,7 @@');
    assert.ok(d.lines.includes('+import unicodedata'));
    assert.ok(d.lines.includes('-print(slugify("x"))'));
    const big = unifiedDiff('', Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n'), { maxLines: 100 });
    assert.equal(big.added, 5000);
    assert.ok(big.truncated);
    assert.ok(big.lines.length <= 100);
  });
});
