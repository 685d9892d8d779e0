// Faults of the guest agent (issue 11), against a real guest: a malformed request line, the agent
// killed with SIGKILL mid-command (directly and under the agent loop), a cgroup set-up that fails.
// After each: the agent (or its successor) serves, no process of the interrupted command is left in
// the guest, no cgroup or descriptor leaked, and the change set is what it was (compared by hash).
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClientChannel } from 'ssh2';
import { AgentLoop } from '../../extension/agent/loop';
import { AGENT_TOOLS } from '../../extension/agent/tools';
import { TranscriptStore } from '../../extension/agent/transcript';
import { readChangeSet } from '../../extension/changes/changeSet';
import { GuestError } from '../../extension/guest/errors';
import { AGENT_COMMAND } from '../../extension/guest/guestAgent';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { fault } from '../support/faults';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { bootGuest, startHelper, tempDir } from '../vm/harness';

const AREA = 'guest';
let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let root: Awaited<ReturnType<typeof tempDir>>;
let model: ScriptedModel;
let baseURL: string;

async function rootSh(script: string): Promise<string> {
  const r = await vm.sh(script, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** The change set as path → hash, to compare before and after a fault. */
async function changeHashes(): Promise<string> {
  const cs = await readChangeSet(vm);
  return createHash('sha256')
    .update(JSON.stringify(cs.changes.map((c) => [c.path.toString('base64'), c.kind, c.sha256 ?? c.target?.toString('base64') ?? ''])))
    .digest('hex');
}

/** A second agent on its own channel, spoken to line by line. */
class RawAgent {
  private buf = '';
  readonly events: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly ch: ClientChannel) {
    ch.on('data', (c: Buffer) => {
      this.buf += c.toString('utf8');
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.events.push(JSON.parse(this.buf.slice(0, nl)) as Record<string, unknown>);
        this.buf = this.buf.slice(nl + 1);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async open(): Promise<RawAgent> {
    const a = new RawAgent(await vm.connection.exec(AGENT_COMMAND));
    await a.until((e) => e.ev === 'hello', 'the agent hello');
    return a;
  }
  get pid(): number {
    return this.events.find((e) => e.ev === 'hello')!.pid as number;
  }
  send(line: string | Buffer): void {
    this.ch.write(line);
  }
  async until(pred: (e: Record<string, unknown>) => boolean, what: string, ms = 30_000): Promise<Record<string, unknown>> {
    const end = Date.now() + ms;
    for (;;) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; got ${JSON.stringify(this.events.slice(-5))}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 500);
      });
    }
  }
  close(): void {
    this.ch.end();
  }
}

before(
  async () => {
    root = await tempDir('faults-agent');
    const ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    await mkdir(path.join(root.dir, 'sessions'));
    await writeFile(path.join(ws, 'a.txt'), 'a\n');
    model = new ScriptedModel();
    baseURL = await model.start();
    client = startHelper();
    vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'faults-agent');
    sb = GuestSandbox.for(vm);
    const r = await sb.run('echo changed > /workspace/a.txt && echo new > /workspace/b.txt');
    assert.equal(r.code, 0);
  },
  { timeout: 300_000 },
);

after(async () => {
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await model?.close();
  await root?.dispose();
});

describe('guest agent faults', { timeout: 600_000 }, () => {
  it('answers a malformed line with an error and keeps serving, also a running command', { timeout: 120_000 }, async () => {
    await fault(AREA, 'malformed-request-line', async () => {
      const a = await RawAgent.open();
      try {
        a.send(JSON.stringify({ op: 'run', id: 1, argv: ['/bin/sh', '-c', 'read x; echo got-$x'], stdin: Buffer.from('line\n').toString('base64') }) + '\n');
        a.send('this is not json\n');
        a.send('[1,2,3]\n');
        a.send(Buffer.concat([Buffer.from('{"op":"run","id":'), Buffer.from([0xff, 0xfe]), Buffer.from('}\n')]));
        a.send('{"op":"run","id":"x","argv":[]}\n');
        a.send('{"op":"discard","id":9,"paths":["not base64!"]}\n');
        a.send(JSON.stringify({ op: 'run', id: 2, argv: ['/bin/echo', 'still-serving'] }) + '\n');
        await a.until((e) => e.ev === 'exit' && e.id === 2, 'the command after the garbage');
        await a.until((e) => e.ev === 'exit' && e.id === 1, 'the command running during the garbage');
        await a.until((e) => e.ev === 'error' && e.id === 9, 'the answer to the failing op (it runs in a thread)');
        const errors = a.events.filter((e) => e.ev === 'error');
        assert.ok(errors.filter((e) => e.id === null).length >= 4, `each malformed line is answered: ${JSON.stringify(errors)}`);
        const out = a.events.filter((e) => e.ev === 'out').map((e) => Buffer.from(e.b64 as string, 'base64').toString()).join('');
        assert.match(out, /got-line/);
        assert.match(out, /still-serving/);
      } finally {
        a.close();
      }
    });
  });

  it('a cgroup set-up that fails leaks no cgroup and no descriptor, and the next command runs', { timeout: 120_000 }, async () => {
    await fault(AREA, 'cgroup-setup-fails', async () => {
      const a = await RawAgent.open();
      try {
        const fds = async (): Promise<number> => Number((await rootSh(`ls /proc/${a.pid}/fd | wc -l`)).trim());
        a.send(JSON.stringify({ op: 'ping', id: 0 }) + '\n');
        await a.until((e) => e.ev === 'pong', 'pong');
        const before = await fds();
        for (let i = 0; i < 5; i++) a.send(JSON.stringify({ op: 'run', id: 10 + i, argv: ['/bin/true'], cgroup: { name: `cmd-bad-${i}`, memoryMax: 64 * 1024 * 1024, cpuMax: 'not a quota' } }) + '\n');
        for (let i = 0; i < 5; i++) await a.until((e) => e.ev === 'error' && e.id === 10 + i, `the refusal of ${10 + i}`);
        assert.equal(a.events.filter((e) => e.ev === 'started' && typeof e.id === 'number' && e.id >= 10 && e.id < 15).length, 0, 'nothing ran without its limits');
        assert.equal((await rootSh('find /sys/fs/cgroup/cowork -name "cmd-bad-*" | wc -l')).trim(), '0', 'no cgroup left');
        assert.equal(await fds(), before, 'no descriptor left');
        a.send(JSON.stringify({ op: 'run', id: 20, argv: ['/bin/cat', '/proc/self/cgroup'], cgroup: { name: 'cmd-good', pidsMax: 10 } }) + '\n');
        await a.until((e) => e.ev === 'exit' && e.id === 20, 'a good command after the failures');
        const out = a.events.filter((e) => e.ev === 'out' && e.id === 20).map((e) => Buffer.from(e.b64 as string, 'base64').toString()).join('');
        assert.match(out, /^0::\/cowork\/agent-\d+-\d+\/cmd-good$/m, 'the command ran in its cgroup');
      } finally {
        a.close();
      }
    });
  });

  it('the agent killed mid-command: the call fails as disconnected, the next agent leaves no process', { timeout: 180_000 }, async () => {
    await fault(AREA, 'agent-killed-mid-command', async () => {
      const before = await changeHashes();
      let started!: () => void;
      const begun = new Promise<void>((r) => (started = r));
      const agentPid = Number((await rootSh('echo $PPID')).trim());
      const running = vm.sh('echo begun; sleep 333; echo never', { onStdout: () => started() });
      const boxed = sb.run('sleep 334');
      await begun;
      const killer = await vm.connection.exec(`kill -9 ${agentPid}`);
      killer.resume();
      await assert.rejects(running, (e: unknown) => e instanceof GuestError && e.code === 'disconnected');
      await assert.rejects(boxed, (e: unknown) => e instanceof GuestError && e.code === 'disconnected');
      await vm.reconnect();
      assert.equal((await rootSh("pgrep -f '^sleep 33[34]$' || true")).trim(), '', 'no process of the killed agent is left');
      assert.equal((await rootSh(`ls -d /sys/fs/cgroup/cowork/agent-${agentPid}-* 2>/dev/null || true`)).trim(), '', "the dead agent's cgroups are gone");
      assert.equal(await changeHashes(), before, 'the change set is unchanged');
    });
  });

  it('under the agent loop: the call reports it was interrupted, the task goes on', { timeout: 180_000 }, async () => {
    await fault(AREA, 'agent-killed-under-the-loop', async () => {
      const before = await changeHashes();
      const transcript = await TranscriptStore.open(path.join(root.dir, 'transcripts', 't.jsonl'));
      let killed = false;
      const loop = new AgentLoop({
        client: new Anthropic({ apiKey: 'sk-ant-test', baseURL, maxRetries: 0 }),
        model: 'claude-test',
        maxTokens: 1024,
        tokenBudget: 0,
        commandTimeoutMs: 120_000,
        system: 'test',
        tools: AGENT_TOOLS,
        transcript,
        sandbox: () => Promise.resolve(GuestSandbox.for(vm)),
        reconnect: () => vm.reconnect(),
        onEvent: (e) => {
          if (e.type === 'tool_output' && e.chunk.includes('begun') && !killed) {
            killed = true;
            void vm.connection.exec("pkill -KILL -f 'cowork/agent.py'").then((ch) => ch.resume());
          }
        },
      });
      model.play(say(toolUse('bash', { command: 'echo begun; sleep 335; echo never' }, 'k1')), say(toolUse('bash', { command: 'echo after-restart' }, 'k2')), say(text('done')));
      assert.equal(await loop.send('go', new AbortController().signal), 'done');
      const results = transcript.all.filter((e) => e.type === 'tool_result');
      assert.equal(results.length, 2);
      assert.ok(results[0]!.type === 'tool_result' && results[0]!.isError && /interrupted/.test(results[0]!.content), 'the call says it was interrupted');
      assert.ok(results[1]!.type === 'tool_result' && /after-restart/.test(results[1]!.content), 'the next call runs');
      assert.equal((await rootSh("pgrep -f '^sleep 335$' || true")).trim(), '', 'no process left');
      assert.equal(await changeHashes(), before, 'the change set is unchanged');
    });
  });
});
