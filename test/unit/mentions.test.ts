import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mentionFor, mentionNote, parseMentions } from '../../extension/panel/mentions';

describe('@mentions in a prompt', () => {
  it('finds files and line ranges, once each, and ignores e-mail addresses and paths out of the workspace', () => {
    assert.deepEqual(parseMentions('Fix @src/a.ts:10-20 and @README.md, then @src/a.ts:10-20 again; mail me@example.com'), [
      { path: 'src/a.ts', lines: { from: 10, to: 20 } },
      { path: 'README.md' },
    ]);
    assert.deepEqual(parseMentions('@./lib/x.py:7 @../secret @/etc/passwd @a/../../b'), [{ path: 'lib/x.py', lines: { from: 7, to: 7 } }]);
    assert.deepEqual(parseMentions('C:@x no mention'), []);
    assert.deepEqual(parseMentions('@dir/file:name.txt'), [{ path: 'dir/file:name.txt' }]);
  });

  it('tells the model the /workspace paths, and which mentions name no file', () => {
    const note = mentionNote(parseMentions('see @src/a.ts:3-4 and @gone.txt'), (p) => p === 'src/a.ts');
    assert.equal(note, '\n\n(Files the person mentioned:\n- /workspace/src/a.ts (lines 3–4)\n- /workspace/gone.txt: no such file in the workspace)');
    assert.equal(mentionNote([], () => true), '');
  });

  it('mentions the active editor file or its selected lines', () => {
    assert.equal(mentionFor('src/a.ts'), '@src/a.ts ');
    assert.equal(mentionFor('src/a.ts', { from: 3, to: 9 }), '@src/a.ts:3-9 ');
    assert.equal(mentionFor('my notes.md'), '"my notes.md" ');
  });
});
