// Faults of a task that need no VM: the model API dropping the stream mid-response (the real SDK
// over real HTTP to the scripted Messages API, which cuts the socket), and each state file
// corrupted (task index, transcript, own-writes, last scan). For each: a clear message, nothing
// lost (compared by hash), the task usable afterwards. Faults that kill QEMU or the SSH connection
// are in taskVm.test.ts.
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentLoop } from '../../extension/agent/loop';
import { TranscriptStore } from '../../extension/agent/transcript';
import { DirectRecord } from '../../extension/changes/direct';
import { OwnWrites } from '../../extension/changes/ownWrites';
import { SettingsSchema } from '../../extension/config/settings';
import { VmHelper } from '../../extension/session/vmHelper';
import { TaskManager } from '../../extension/session/taskManager';
import type { StateProblem } from '../../extension/state/stateFiles';
import { fault } from '../support/faults';
import { dropAfter, say, ScriptedModel, text } from '../support/scriptedModel';

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
let dir: string;
let model: ScriptedModel;
let baseURL: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-faults-task-'));
  model = new ScriptedModel();
  baseURL = await model.start();
});
after(async () => {
  await model.close();
  await rm(dir, { recursive: true, force: true });
});

function loopFor(transcript: TranscriptStore): AgentLoop {
  return new AgentLoop({
    client: new Anthropic({ apiKey: 'sk-ant-fault-test-0123456789', baseURL, maxRetries: 2 }),
    model: 'claude-opus-5-5',
    maxTokens: 1024,
    tokenBudget: 0,
    commandTimeoutMs: 10_000,
    system: 'test',
    tools: [],
    transcript,
    sandbox: () => Promise.reject(new Error('no VM in this test')),
    reconnect: () => Promise.reject(new Error('no VM in this test')),
  });
}

async function newManager(storageDir: string, problems: StateProblem[]): Promise<TaskManager> {
  const settings = SettingsSchema.parse({});
  return TaskManager.load({ helper: new VmHelper({ helperPath: '/nonexistent', log: quiet }), workspace: storageDir, storageDir, log: quiet, report: (p) => problems.push(p), apiKey: () => Promise.resolve(undefined), settings: () => settings });
}

describe('task faults without a VM', { timeout: 60_000 }, () => {
  it('the model API drops the stream mid-response', { timeout: 30_000 }, async () => {
    await fault('task', 'model stream dropped mid-response', async () => {
      const file = path.join(dir, 'drop', 'transcript.jsonl');
      const transcript = await TranscriptStore.open(file);
      model.play(dropAfter(5, text('This reply is long enough to be cut off part of the way through, as a network failure would.')));
      assert.equal(await loopFor(transcript).send('first question', new AbortController().signal), 'error');
      assert.equal(model.dropped, 1, 'the scripted API cut the stream');
      assert.equal(model.requests.length, 1, 'a stream already handed over is not retried by the SDK');
      const err = transcript.all.at(-1)!;
      assert.ok(err.type === 'error', 'the turn ends with an error event');
      assert.match(err.message, /connection to the API dropped in the middle of the reply/);
      assert.match(err.action ?? '', /follow-up/);
      const beforeBytes = await readFile(file);

      // nothing lost: the follow-up carries the first question and the new one
      model.play(say(text('Answered after the drop.')));
      assert.equal(await loopFor(transcript).send('please continue', new AbortController().signal), 'done');
      const sent = model.requests.at(-1)!.body.messages;
      assert.equal(sent.length, 1, 'one user message (the two turns of the person merged)');
      const texts = (sent[0]!.content as { type: string; text?: string }[]).map((b) => b.text);
      assert.deepEqual(texts, ['first question', 'please continue']);
      const after = await readFile(file);
      assert.equal(sha(after.subarray(0, beforeBytes.length)), sha(beforeBytes), 'the transcript before the follow-up is intact (prefix hash)');
      assert.equal((await TranscriptStore.open(file)).all.at(-1)!.type, 'done');
    });
  });

  it('a corrupt task index is moved aside, reported once, the tasks rebuilt and the list usable', { timeout: 20_000 }, async () => {
    await fault('task', 'task index corrupted', async () => {
      const storage = path.join(dir, 'index');
      const problems: StateProblem[] = [];
      const m = await newManager(storage, problems);
      const a = await m.create('first task');
      await a.done;
      const transcriptHash = sha(await readFile(path.join(a.task.storageDir, 'transcript.jsonl')));
      await m.dispose();
      const index = path.join(storage, 'tasks', 'index.json');
      await writeFile(index, '[{"id": "torn');
      const again = await newManager(storage, problems);
      assert.equal(problems.length, 1, 'reported once');
      assert.match(problems[0]!.message, /index\.json was unreadable.*moved aside as index\.json\.corrupt-/);
      assert.equal(await readFile(problems[0]!.movedTo!, 'utf8'), '[{"id": "torn', 'the corrupt file is kept, not overwritten');
      assert.deepEqual(again.list().map((t) => t.title), ['first task'], 'the task list was rebuilt from the task folders');
      assert.equal(sha(await readFile(path.join(a.task.storageDir, 'transcript.jsonl'))), transcriptHash, 'the task\'s transcript is untouched');
      const b = await again.create('second task');
      await b.done;
      const third = await newManager(storage, problems);
      assert.deepEqual(third.list().map((t) => t.title).sort(), ['first task', 'second task']);
      assert.equal(problems.length, 1, 'the new index is readable: nothing more to report');
      await again.dispose();
      await third.dispose();
    });
  });

  it('a corrupt transcript is moved aside, its readable events kept, and the task continues', { timeout: 20_000 }, async () => {
    await fault('task', 'transcript corrupted', async () => {
      const storage = path.join(dir, 'transcript');
      const problems: StateProblem[] = [];
      const m = await newManager(storage, problems);
      const { task, done } = await m.create('a task');
      await done;
      const file = task.transcript.file;
      const good = await readFile(file, 'utf8');
      const events = good.trim().split('\n');
      await writeFile(file, `${events[0]}\n\u0000\u0000garbage from a bad disk\n${events.slice(1).join('\n')}\n{"type":"us`);
      await m.dispose();
      const again = await newManager(storage, problems);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /transcript\.jsonl had 2 unreadable line\(s\).*moved aside/);
      const reopened = again.get(task.info.id)!;
      assert.equal(sha(reopened.transcript.all.map((e) => JSON.stringify(e) + '\n').join('')), sha(good), 'every readable event kept, byte for byte');
      assert.equal(sha(await readFile(file, 'utf8')), sha(good), 'the file holds exactly the readable events again');
      assert.equal(await again.send(reopened, 'a follow-up'), 'error', 'the task runs a follow-up (no key here: a clear error)');
      assert.equal(reopened.transcript.all.filter((e) => e.type === 'user').length, 2);
      const names = await readdir(path.dirname(file));
      assert.equal(names.filter((n) => n.startsWith('transcript.jsonl.corrupt-')).length, 1);
      await again.dispose();
    });
  });

  it('a corrupt own-writes record is moved aside and reported; recording works afterwards', { timeout: 20_000 }, async () => {
    await fault('task', 'own-writes corrupted', async () => {
      const ws = path.join(dir, 'ow-ws');
      const file = path.join(dir, 'ow', 'own-writes.json');
      await rm(ws, { recursive: true, force: true });
      await mkdir(ws, { recursive: true });
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(path.join(ws, 'a.txt'), 'a');
      await writeFile(file, '{"YS50eHQ=": 12, "broken');
      const problems: StateProblem[] = [];
      const ow = new OwnWrites(file, (p) => problems.push(p));
      await ow.load();
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /own-writes\.json was unreadable.*moved aside/);
      assert.equal(ow.since(Buffer.from('a.txt'), 5), 5, 'starts empty (only costs a false conflict warning)');
      await ow.record(ws, [Buffer.from('a.txt')]);
      const saved = JSON.parse(await readFile(file, 'utf8')) as Record<string, number>;
      assert.ok(saved['YS50eHQ='] && saved['YS50eHQ='] > 5, 'the new record is written');
      assert.equal(await readFile(problems[0]!.movedTo!, 'utf8'), '{"YS50eHQ=": 12, "broken');
    });
  });

  it('a corrupt direct-mode record is moved aside (it holds your versions: never overwritten) and reported', { timeout: 20_000 }, async () => {
    await fault('task', 'direct-mode record corrupted', async () => {
      const rec = path.join(dir, 'direct');
      await mkdir(rec, { recursive: true });
      const garbage = '[{"path": "YS50eHQ=", "before": "abc';
      await writeFile(path.join(rec, 'applied.json'), garbage);
      const problems: StateProblem[] = [];
      const r = await DirectRecord.open(rec, (p) => problems.push(p));
      assert.equal(r.all().length, 0);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /applied\.json was unreadable.*moved aside/);
      await r.save();
      assert.equal(await readFile(problems[0]!.movedTo!, 'utf8'), garbage, 'the damaged record is kept for recovery by hand');
      assert.deepEqual(JSON.parse(await readFile(path.join(rec, 'applied.json'), 'utf8')), [], 'the new record is readable');
      assert.equal((await DirectRecord.open(rec, (p) => problems.push(p))).all().length, 0);
      assert.equal(problems.length, 1);
    });
  });

  it('a corrupt last change scan is moved aside and reported; the next scan replaces it', { timeout: 20_000 }, async () => {
    await fault('task', 'last scan corrupted', async () => {
      const storage = path.join(dir, 'scan');
      const problems: StateProblem[] = [];
      const m = await newManager(storage, problems);
      const { task, done } = await m.create('a task');
      await done;
      await task.recordScan([{ path: Buffer.from('x.txt'), display: 'x.txt', kind: 'added', size: 1, sha256: sha('x') }]);
      await m.dispose();
      await writeFile(path.join(task.storageDir, 'last-scan.json'), '{"version":1,"at":');
      const again = await newManager(storage, problems);
      const t = again.get(task.info.id)!;
      assert.equal(t.lastScan, undefined);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /last-scan\.json was unreadable/);
      await t.recordScan([]);
      const third = await newManager(storage, problems);
      assert.deepEqual(third.get(task.info.id)!.lastScan?.changes, []);
      assert.equal(problems.length, 1);
      await again.dispose();
      await third.dispose();
    });
  });
});

