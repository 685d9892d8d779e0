// A pasted image reaches the model as an image block, through the real SDK to the scripted model
// (which refuses malformed images as the API does), is kept in the transcript so later turns send it
// again, and the schema the panel and the host share refuses what the API would.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { AgentLoop } from '../../extension/agent/loop';
import { toMessages } from '../../extension/agent/messages';
import { TranscriptStore } from '../../extension/agent/transcript';
import { IMAGE_LIMITS, PromptImages, type PromptImage } from '../../extension/protocol/transcript';
import { say, ScriptedModel, text } from '../support/scriptedModel';

// a 1×1 PNG
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const image: PromptImage = { mediaType: 'image/png', data: PNG };

let model: ScriptedModel;
let baseURL: string;
let dir: string;

function loop(transcript: TranscriptStore): AgentLoop {
  return new AgentLoop({
    client: new Anthropic({ apiKey: 'sk-ant-unit-0123456789', baseURL, maxRetries: 0 }),
    model: 'claude-opus-5-5',
    maxTokens: 1024,
    tokenBudget: 0,
    commandTimeoutMs: 10_000,
    system: 'test',
    tools: [],
    transcript,
    sandbox: () => Promise.reject(new Error('no sandbox in this test')),
    reconnect: () => Promise.resolve(),
  });
}

type Block = { type: string; text?: string; source?: { type: string; media_type: string; data: string } };

describe('pasted images', { timeout: 60_000 }, () => {
  before(async () => {
    model = new ScriptedModel();
    baseURL = await model.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'cowork-images-'));
  });
  after(async () => {
    await model.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('go to the model as image blocks before the text, and again with a follow-up after a reload', async () => {
    const file = path.join(dir, 't1.jsonl');
    const transcript = await TranscriptStore.open(file);
    model.play(say(text('A single pixel.')));
    assert.equal(await loop(transcript).send('What is in this picture?', new AbortController().signal, [image]), 'done');
    const first = model.requests.at(-1)!.body.messages[0]!.content as Block[];
    assert.deepEqual(
      first.map((b) => b.type),
      ['image', 'text'],
    );
    assert.deepEqual(first[0]!.source, { type: 'base64', media_type: 'image/png', data: PNG });
    assert.equal(first[1]!.text, 'What is in this picture?');
    // the window reloads: the transcript read back from disk still holds the image, and a
    // follow-up sends the whole conversation with it
    const reopened = await TranscriptStore.open(file);
    model.play(say(text('Still one pixel.')));
    assert.equal(await loop(reopened).send('And now?', new AbortController().signal), 'done');
    const again = model.requests.at(-1)!.body.messages[0]!.content as Block[];
    assert.equal(again[0]!.type, 'image');
    assert.equal(again[0]!.source?.data, PNG);
    assert.equal(toMessages(reopened.all).length, 4);
  });

  it('a malformed image is refused by the stand-in as the API refuses it, and the error is in the transcript', async () => {
    const transcript = await TranscriptStore.open(path.join(dir, 't2.jsonl'));
    model.play(say(text('never sent')));
    const outcome = await loop(transcript).send('look', new AbortController().signal, [{ mediaType: 'image/jpeg', data: PNG }]);
    assert.equal(outcome, 'error');
    const err = transcript.all.find((e) => e.type === 'error');
    assert.ok(err && err.type === 'error' && /does not match the provided media type/.test(err.message), JSON.stringify(err));
    model.clear();
  });

  it('the shared schema refuses a fifth image, an SVG, data that is not base64 and one over the size cap', () => {
    const problem = (v: unknown): string => {
      const r = PromptImages.safeParse(v);
      assert.equal(r.success, false, `accepted ${JSON.stringify(v).slice(0, 80)}`);
      return r.error.issues.map((i) => i.message).join('; ');
    };
    assert.equal(PromptImages.safeParse([image, image, image, image]).success, true);
    assert.match(problem([image, image, image, image, image]), /at most 4 images/);
    assert.match(problem([{ mediaType: 'image/svg+xml', data: PNG }]), /image\/png/);
    assert.match(problem([{ mediaType: 'image/png', data: 'not base64!' }]), /base64/);
    assert.match(problem([{ mediaType: 'image/png', data: 'A'.repeat(Math.ceil(IMAGE_LIMITS.decodedBytes / 3) * 4 + 4) }]), /at most 3.75 MB/);
  });
});
