// The agent loop against a real guest, through the real @anthropic-ai/sdk over real HTTP to the
// scripted Messages API server (the only stand-in: the real API cannot be reached here).
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentLoop, type LiveEvent } from '../../extension/agent/loop';
import { toMessages } from '../../extension/agent/messages';
import { systemPrompt } from '../../extension/agent/systemPrompt';
import { AGENT_TOOLS } from '../../extension/agent/tools';
import { TranscriptStore } from '../../extension/agent/transcript';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { errorTurn, say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { bootGuest, startHelper, tempDir } from './harness';

const API_KEY = 'sk-ant-api03-agent-test-key-never-in-the-guest-0123456789';
let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let model: ScriptedModel;
let baseURL: string;
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let n = 0;

async function newLoop(opts: { tokenBudget?: number; onEvent?: (e: LiveEvent) => void } = {}): Promise<{ loop: AgentLoop; transcript: TranscriptStore }> {
  const transcript = await TranscriptStore.open(path.join(root.dir, 'transcripts', `t${++n}.jsonl`));
  const loop = new AgentLoop({
    client: new Anthropic({ apiKey: API_KEY, baseURL, maxRetries: 3 }),
    model: 'claude-opus-5-5',
    maxTokens: 4096,
    tokenBudget: opts.tokenBudget ?? 0,
    commandTimeoutMs: 60_000,
    system: systemPrompt({ allowedDomains: ['registry.npmjs.org'], mode: 'review', workspaceName: 'ws' }),
    tools: AGENT_TOOLS,
    transcript,
    sandbox: () => Promise.resolve(sb),
    reconnect: () => vm.reconnect(),
    onEvent: opts.onEvent,
  });
  return { loop, transcript };
}

const toolResults = (req: { body: { messages: { role: string; content: unknown }[] } }) =>
  (req.body.messages.at(-1)!.content as { type: string; tool_use_id?: string; content?: string; is_error?: boolean }[]).filter((b) => b.type === 'tool_result');

before(async () => {
  root = await tempDir('agent');
  ws = path.join(root.dir, 'ws');
  await mkdir(ws);
  await mkdir(path.join(root.dir, 'sessions'));
  await writeFile(path.join(ws, 'hello.txt'), 'hello world\n');
  model = new ScriptedModel();
  baseURL = await model.start();
  process.env.ANTHROPIC_API_KEY = API_KEY; // in the test process and so in the helper's environment
  client = startHelper();
  vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'agent');
  sb = GuestSandbox.for(vm);
});

after(async () => {
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await model?.close();
  await root?.dispose();
});

describe('the agent loop', () => {
  it('runs a multi-turn task with bash, the editor and the plan, changing files only in the overlay', async () => {
    const start = model.requests.length;
    model.play(
      say(text('I will plan first.'), toolUse('update_plan', { todos: [{ content: 'read hello.txt', status: 'in_progress' }, { content: 'edit it', status: 'pending' }] }, 'toolu_plan')),
      say(toolUse('bash', { command: 'cat hello.txt && echo made-by-bash > made.txt && pwd' }, 'toolu_bash')),
      say(toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/hello.txt', old_str: 'world', new_str: 'cowork' }, 'toolu_edit')),
      say(toolUse('str_replace_based_edit_tool', { command: 'view', path: '/workspace/hello.txt' }, 'toolu_view')),
      say(text('Done: hello.txt now greets cowork.')),
    );
    const deltas: string[] = [];
    const { loop, transcript } = await newLoop({ onEvent: (e) => e.type === 'text_delta' && deltas.push(e.text) });
    assert.equal(await loop.send('Change the greeting.', new AbortController().signal), 'done');
    const reqs = model.requests.slice(start);
    assert.equal(reqs.length, 5);
    const sent = reqs[0]!.headers['x-api-key'] ?? reqs[0]!.headers.authorization?.replace(/^Bearer /, '');
    assert.equal(sent, API_KEY, 'the key goes to the API, and only there');
    assert.equal(reqs[0]!.body.stream, true);
    // tool results reach the next request with the right ids and content
    assert.deepEqual(toolResults(reqs[1]!).map((b) => b.tool_use_id), ['toolu_plan']);
    const bash = toolResults(reqs[2]!)[0]!;
    assert.equal(bash.tool_use_id, 'toolu_bash');
    assert.match(bash.content!, /hello world\n\/workspace/);
    assert.equal(bash.is_error, false);
    assert.match(toolResults(reqs[3]!)[0]!.content!, /Edited \/workspace\/hello.txt at line 1/);
    assert.match(toolResults(reqs[4]!)[0]!.content!, /1\thello cowork/);
    // the change is in the overlay, not on the host
    assert.equal((await vm.sh('cat /workspace/hello.txt /workspace/made.txt')).stdout.toString(), 'hello cowork\nmade-by-bash\n');
    assert.equal(await readFile(path.join(ws, 'hello.txt'), 'utf8'), 'hello world\n');
    // streaming and the transcript
    assert.equal(deltas.join(''), 'I will plan first.Done: hello.txt now greets cowork.');
    assert.deepEqual(transcript.plan().map((p) => p.status), ['in_progress', 'pending']);
    assert.ok(transcript.totals().output > 0);
  });

  it('puts cache_control on the stable prefix: tools, system, and the latest user turns', () => {
    const req = model.requests.at(-1)!.body;
    const tools = req.tools as { cache_control?: unknown }[];
    assert.ok(tools.at(-1)!.cache_control, 'last tool');
    assert.ok(tools.slice(0, -1).every((t) => !t.cache_control));
    assert.ok((req.system as { cache_control?: unknown }[])[0]!.cache_control, 'system prompt');
    const marked = req.messages.filter((m) => Array.isArray(m.content) && (m.content as { cache_control?: unknown }[]).some((b) => b.cache_control));
    assert.equal(marked.length, 2);
    assert.ok(marked.every((m) => m.role === 'user'));
    assert.equal(req.messages.at(-1), marked.at(-1), 'the newest turn is a breakpoint');
  });

  it('retries a 529 (and a 429 with retry-after) and then succeeds', async () => {
    const start = model.requests.length;
    model.play(errorTurn('overloaded_error', 'Overloaded'), errorTurn('rate_limit_error', 'slow down', 1), say(text('after retries')));
    const { loop, transcript } = await newLoop();
    const t0 = Date.now();
    assert.equal(await loop.send('hi', new AbortController().signal), 'done');
    assert.equal(model.requests.length - start, 3);
    assert.ok(Date.now() - t0 >= 900, 'retry-after: 1 was honoured');
    assert.ok(transcript.all.some((e) => e.type === 'assistant'));
  });

  it('turns a 401 into the key message and ends the turn', async () => {
    model.play(errorTurn('authentication_error', 'invalid x-api-key'));
    const { loop, transcript } = await newLoop();
    assert.equal(await loop.send('hi', new AbortController().signal), 'error');
    const err = transcript.all.find((e) => e.type === 'error');
    assert.ok(err && err.type === 'error');
    assert.match(err.message, /API key was rejected/);
    assert.match(err.action ?? '', /Cowork: Set API Key/);
  });

  it('stops mid-stream at once, not when the stream ends', async () => {
    model.play({ kind: 'message', content: [text('this will never finish')], hangAfterStart: true });
    const ac = new AbortController();
    const { loop, transcript } = await newLoop();
    const abortedBefore = model.aborted;
    const requestsBefore = model.requests.length;
    const running = loop.send('go', ac.signal);
    await waitUntil(() => model.requests.length > requestsBefore, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    ac.abort();
    assert.equal(await running, 'stopped');
    // the stream/command would run for minutes: 5 s tells "at once" from "when it ends" on a loaded
    // emulated host; how fast it is goes to the log, not into a tight assertion
    console.log(`figure: stop took ${Date.now() - t0} ms`);
    assert.ok(Date.now() - t0 < 5_000, `stopping took ${Date.now() - t0} ms`);
    assert.equal(transcript.all.at(-1)?.type, 'stopped');
    await waitUntil(() => model.aborted > abortedBefore, 2_000);
    assert.ok(model.aborted > abortedBefore, 'the HTTP stream was closed');
  });

  it('stops mid-command at once, not when the command ends, and leaves no process in the guest', async () => {
    model.play(say(toolUse('bash', { command: 'echo begun; sleep 77; echo never' }, 'toolu_sleep')));
    const ac = new AbortController();
    let started = false;
    const { loop, transcript } = await newLoop({ onEvent: (e) => e.type === 'tool_output' && e.chunk.includes('begun') && (started = true) });
    const running = loop.send('sleep', ac.signal);
    await waitUntil(() => started, 30_000);
    const t0 = Date.now();
    ac.abort();
    assert.equal(await running, 'stopped');
    // the stream/command would run for minutes: 5 s tells "at once" from "when it ends" on a loaded
    // emulated host; how fast it is goes to the log, not into a tight assertion
    console.log(`figure: stop took ${Date.now() - t0} ms`);
    assert.ok(Date.now() - t0 < 5_000, `stopping took ${Date.now() - t0} ms`);
    const result = transcript.all.find((e) => e.type === 'tool_result');
    assert.ok(result && result.type === 'tool_result' && result.isError);
    const ps = await vm.sh("pgrep -f '^sleep 77$' || true");
    assert.equal(ps.stdout.toString().trim(), '', 'no sleep left in the guest');
  });

  it('refuses path traversal and paths outside /workspace in editor input, changing nothing', async () => {
    const start = model.requests.length;
    model.play(
      say(
        toolUse('str_replace_based_edit_tool', { command: 'view', path: '/workspace/../etc/passwd' }, 't1'),
        toolUse('str_replace_based_edit_tool', { command: 'create', path: '/etc/cron.d/evil', file_text: 'x' }, 't2'),
        toolUse('str_replace_based_edit_tool', { command: 'view', path: 'hello.txt' }, 't3'),
        toolUse('bash', { command: 'ln -sf /etc /workspace/etc-link' }, 't4'),
        toolUse('str_replace_based_edit_tool', { command: 'create', path: '/workspace/etc-link/evil', file_text: 'x' }, 't5'),
        toolUse('str_replace_based_edit_tool', { command: 'view', path: '/workspace/etc-link/passwd' }, 't6'),
        toolUse('str_replace_based_edit_tool', { command: 'explode', path: '/workspace/hello.txt' }, 't7'),
      ),
      say(text('ok')),
    );
    const { loop } = await newLoop();
    assert.equal(await loop.send('try', new AbortController().signal), 'done');
    const results = toolResults(model.requests[start + 1]!);
    const byId = Object.fromEntries(results.map((r) => [r.tool_use_id ?? "", r] as const));
    for (const id of ['t1', 't2', 't3', 't5', 't6', 't7']) assert.equal(byId[id]!.is_error, true, `${id}: ${byId[id]!.content}`);
    assert.match(byId.t1!.content!, /\.\./);
    assert.match(byId.t2!.content!, /outside \/workspace/);
    assert.match(byId.t3!.content!, /absolute/);
    assert.match(byId.t5!.content!, /outside \/workspace/);
    assert.match(byId.t6!.content!, /outside \/workspace/);
    assert.match(byId.t7!.content!, /view, create, str_replace, insert/);
    assert.equal((await vm.sh('ls /etc/evil /etc/cron.d/evil 2>&1 || true')).stdout.toString().includes('No such file'), true);
  });

  it('truncates huge output with a marker and a byte count, and does not send binary output', async () => {
    const start = model.requests.length;
    model.play(say(toolUse('bash', { command: "head -c 200000 /dev/zero | tr '\\0' a; exit 3" }, 'big'), toolUse('bash', { command: 'head -c 4000 /dev/urandom' }, 'bin')), say(text('ok')));
    const { loop } = await newLoop();
    await loop.send('out', new AbortController().signal);
    const [big, bin] = toolResults(model.requests[start + 1]!);
    assert.ok(big!.content!.length < 31_000);
    assert.match(big!.content!, /output truncated: \d+ bytes/);
    assert.match(big!.content!, /Exit code 3/);
    assert.equal(big!.is_error, false, 'a non-zero exit is information for the model, not a tool failure');
    assert.match(bin!.content!, /binary output, 4000 bytes, not shown/);
  });

  it('stops at the token budget with a clear message', async () => {
    model.play(say(toolUse('bash', { command: 'true' })), say(toolUse('bash', { command: 'true' })), say(text('never reached')));
    const { loop, transcript } = await newLoop({ tokenBudget: 50 });
    assert.equal(await loop.send('spend', new AbortController().signal), 'budget');
    const err = transcript.all.find((e) => e.type === 'error');
    assert.ok(err && err.type === 'error' && /token budget/.test(err.message));
    assert.equal(model.pending, 2, 'no request after the budget ran out');
    model.clear();
  });

  it('persists the transcript so a reloaded window can continue the task', async () => {
    model.play(say(toolUse('bash', { command: 'echo one' }, 'p1')), say(text('first answer')));
    const { loop, transcript } = await newLoop();
    await loop.send('first', new AbortController().signal);
    const reopened = await TranscriptStore.open(transcript.file);
    assert.deepEqual(toMessages(reopened.all), toMessages(transcript.all));
    model.play(say(text('second answer')));
    const start = model.requests.length;
    const again = new AgentLoop({ ...(loop as unknown as { o: ConstructorParameters<typeof AgentLoop>[0] }).o, transcript: reopened });
    assert.equal(await again.send('follow-up', new AbortController().signal), 'done');
    const msgs = model.requests[start]!.body.messages;
    assert.equal(msgs.length, 5, 'user, assistant(tool_use), user(tool_result), assistant, user(follow-up)');
    assert.deepEqual((msgs.at(-1)!.content as { text?: string }[]).map((b) => b.text), ['follow-up']);
  });

  it('editor: insert after the last line keeps the final newline, a symlink is edited through (never replaced), no temp file, create checks before making folders', { timeout: 120_000 }, async () => {
    const start = model.requests.length;
    model.play(
      say(
        toolUse('str_replace_based_edit_tool', { command: 'create', path: '/workspace/ed.txt', file_text: 'a\nb\n' }, 'e1'),
        toolUse('str_replace_based_edit_tool', { command: 'insert', path: '/workspace/ed.txt', insert_line: 2, insert_text: 'c' }, 'e2'),
        toolUse('bash', { command: 'ln -s ed.txt edlink && ln -s /tmp tmplink' }, 'e3'),
        toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/edlink', old_str: 'a', new_str: 'A' }, 'e4'),
        toolUse('str_replace_based_edit_tool', { command: 'create', path: '/workspace/tmplink/made-by-create/x.txt', file_text: 'x' }, 'e5'),
      ),
      say(text('ok')),
    );
    const { loop } = await newLoop();
    assert.equal(await loop.send('edit', new AbortController().signal), 'done');
    const byId = Object.fromEntries(toolResults(model.requests[start + 1]!).map((r) => [r.tool_use_id ?? '', r] as const));
    for (const id of ['e1', 'e2', 'e3', 'e4']) assert.equal(byId[id]!.is_error, false, `${id}: ${byId[id]!.content}`);
    assert.equal(byId.e5!.is_error, true);
    assert.match(byId.e5!.content!, /outside \/workspace/);
    const r = await vm.sh('cd /workspace && od -c ed.txt | head -2; stat -c %F edlink; ls -A | grep -c cowork-tmp; ls -d /session/tmp/made-by-create 2>&1 || true');
    const out = r.stdout.toString();
    assert.match(out, /A {2}\\n {3}b {2}\\n {3}c {2}\\n/, `the file is "A\\nb\\nc\\n": ${out}`);
    assert.match(out, /symbolic link/, 'the link is still a link');
    assert.match(out, /^0$/m, 'no temporary file left in /workspace');
    assert.match(out, /No such file/, 'create made no folder outside /workspace');
  });

  it('decodes a multi-byte character split across two output chunks whole', { timeout: 60_000 }, async () => {
    model.play(say(toolUse('bash', { command: "printf 'caf\\xc3'; sleep 0.5; printf '\\xa9 ok\\n'" }, 'u1')), say(text('ok')));
    const chunks: string[] = [];
    const { loop } = await newLoop({ onEvent: (e) => e.type === 'tool_output' && chunks.push(e.chunk) });
    assert.equal(await loop.send('utf8', new AbortController().signal), 'done');
    assert.ok(chunks.length >= 2, `the output came in ${chunks.length} chunk(s)`);
    assert.equal(chunks.join(''), 'café ok\n');
  });

  it('never lets the API key into the guest', async () => {
    const r = await vm.sh(`grep -rIs "${API_KEY}" /proc/[0-9]*/environ /etc /run /tmp /session/tmp /workspace 2>/dev/null | head -1; tr '\\0' '\\n' < /proc/1/environ | grep -c ANTHROPIC || true`);
    assert.equal(r.stdout.toString().trim(), '0');
  });
});

async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}
