// The one module every state file goes through (extension/state/stateFiles.ts): atomic writes,
// corrupt files moved aside and reported once (never overwritten), a journal whose failed append
// is reported and whose later appends still happen; and the transcript built on it.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { TranscriptStore } from '../../extension/agent/transcript';
import { JsonlJournal, moveAside, readJsonState, writeJsonAtomic, type StateProblem } from '../../extension/state/stateFiles';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-state-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const Obj = z.object({ n: z.number() });

describe('state files', () => {
  it('writes atomically: no temporary file is left and the content is whole', async () => {
    const f = path.join(dir, 'a', 'index.json');
    await writeJsonAtomic(f, { n: 1 });
    await writeJsonAtomic(f, { n: 2 });
    assert.deepEqual(JSON.parse(await readFile(f, 'utf8')), { n: 2 });
    assert.deepEqual(await readdir(path.dirname(f)), ['index.json']);
  });

  it('moves a corrupt JSON file aside, reports it once, and never overwrites an earlier one', async () => {
    const f = path.join(dir, 'b', 'index.json');
    await mkdir(path.dirname(f), { recursive: true });
    const problems: StateProblem[] = [];
    for (const garbage of ['{"n": 1', '{"n": "not a number"}']) {
      await writeFile(f, garbage);
      assert.equal(await readJsonState(f, (v) => Obj.parse(v), (p) => problems.push(p)), undefined);
    }
    assert.equal(problems.length, 2, 'one report per corrupt file');
    assert.match(problems[0]!.message, /index\.json was unreadable.*moved aside as index\.json\.corrupt-/);
    const names = (await readdir(path.dirname(f))).sort();
    assert.equal(names.length, 2, `both corrupt files kept: ${names.join(', ')}`);
    assert.ok(names.every((n) => n.startsWith('index.json.corrupt-')));
    const kept = await Promise.all(names.map((n) => readFile(path.join(path.dirname(f), n), 'utf8')));
    assert.deepEqual(kept.sort(), ['{"n": "not a number"}', '{"n": 1'].sort());
    // a missing file is no problem
    assert.equal(await readJsonState(f, (v) => Obj.parse(v), (p) => problems.push(p)), undefined);
    assert.equal(problems.length, 2);
  });

  it('moveAside picks a new name when one with the same time exists', async () => {
    const f = path.join(dir, 'c.json');
    const when = new Date('2026-11-29T12:00:00Z');
    await writeFile(f, 'one');
    const first = await moveAside(f, when);
    await writeFile(f, 'two');
    const second = await moveAside(f, when);
    assert.notEqual(first, second);
    assert.equal(await readFile(first, 'utf8'), 'one');
    assert.equal(await readFile(second, 'utf8'), 'two');
  });

  it('a journal with a torn or damaged line is moved aside and rewritten with the readable entries', async () => {
    const f = path.join(dir, 'd', 'j.jsonl');
    await mkdir(path.dirname(f), { recursive: true });
    await writeFile(f, '{"n":1}\nGARBAGE\n{"n":2}\n{"n":3');
    const problems: StateProblem[] = [];
    const { journal, entries } = await JsonlJournal.open(f, (v) => Obj.parse(v), (p) => problems.push(p));
    assert.deepEqual(entries, [{ n: 1 }, { n: 2 }]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /2 unreadable line\(s\).*moved aside.*2 readable entries kept/);
    journal.append({ n: 4 });
    await journal.flush();
    assert.equal(await readFile(f, 'utf8'), '{"n":1}\n{"n":2}\n{"n":4}\n', 'the next append does not land after a torn fragment');
  });

  it('a failed append is reported once, later appends still happen, and nothing is lost once writing works', async () => {
    const f = path.join(dir, 'e', 'j.jsonl');
    const problems: StateProblem[] = [];
    const { journal } = await JsonlJournal.open(f, (v) => Obj.parse(v), (p) => problems.push(p));
    journal.append({ n: 1 });
    await journal.flush();
    // make appends fail: the journal's path is now a folder
    await rm(f);
    await mkdir(f);
    journal.append({ n: 2 });
    journal.append({ n: 3 });
    await journal.flush();
    assert.equal(journal.failures, 2, 'each later append was still attempted');
    assert.equal(journal.pending, 2);
    assert.equal(problems.length, 1, 'reported once for the run of failures');
    assert.match(problems[0]!.message, /cannot append to j\.jsonl/);
    await rmdir(f);
    journal.append({ n: 4 });
    await journal.flush();
    assert.equal(await readFile(f, 'utf8'), '{"n":2}\n{"n":3}\n{"n":4}\n');
    assert.equal(journal.pending, 0);
    assert.match(problems[1]!.message, /works again/);
  });
});

describe('transcript on the state module', () => {
  it('keeps the readable events of a damaged transcript and reports the file', async () => {
    const f = path.join(dir, 't', 'transcript.jsonl');
    const t = await TranscriptStore.open(f);
    t.append({ type: 'user', text: 'hello' });
    t.append({ type: 'done' });
    await t.flush();
    await writeFile(f, (await readFile(f, 'utf8')) + '{"type":"user","te');
    const problems: StateProblem[] = [];
    const again = await TranscriptStore.open(f, (p) => problems.push(p));
    assert.deepEqual(again.all.map((e) => e.type), ['user', 'done']);
    assert.equal(problems.length, 1);
    assert.ok(problems[0]!.movedTo && (await readFile(problems[0]!.movedTo, 'utf8')).endsWith('{"type":"user","te'));
  });

  it('turnTotals counts only the usage since the last user message (the token budget)', async () => {
    const t = await TranscriptStore.open(path.join(dir, 't2', 'transcript.jsonl'));
    const usage = { input: 100, output: 50, cacheWrite: 10, cacheRead: 5 };
    t.append({ type: 'user', text: 'one' });
    t.append({ type: 'usage', usage, costUsd: 0 });
    t.append({ type: 'usage', usage, costUsd: 0 });
    assert.equal(t.turnTotals().input, 200);
    t.append({ type: 'user', text: 'follow-up' });
    assert.deepEqual(t.turnTotals(), { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });
    t.append({ type: 'usage', usage, costUsd: 0 });
    assert.equal(t.turnTotals().output, 50);
    assert.equal(t.totals().input, 300, 'the whole task is still counted for cost');
    await t.flush();
  });
});
