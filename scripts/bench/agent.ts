// Issue 4 figures: our overhead per tool call (tool_use complete → its result sent back, median of
// 50, with the sandboxed command's own time shown apart), and the share of input tokens served
// from or written to the prompt cache after turn 2 of a 10-turn task (goal ≥ 80 %).
import Anthropic from '@anthropic-ai/sdk';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { AgentLoop } from '../../extension/agent/loop';
import { systemPrompt } from '../../extension/agent/systemPrompt';
import { AGENT_TOOLS } from '../../extension/agent/tools';
import { TranscriptStore } from '../../extension/agent/transcript';
import { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import { VmHostClient } from '../../extension/guest/vmHostClient';
import { say, ScriptedModel, text, toolUse } from '../../test/support/scriptedModel';
import { fmtMs, median, printTable, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const CALLS = Number(process.env.BENCH_TOOL_CALLS ?? 50);

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-agent-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  const model = new ScriptedModel();
  const baseURL = await model.start();
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  const rows: Row[] = [];
  try {
    const vm = await GuestVm.start(client, { vmId: 'bench-agent', workspace: ws, sessionDisk: path.join(tmp, 's.qcow2'), accelerator: 'auto', cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 2 });
    const sb = GuestSandbox.for(vm);
    const run = async (turns: number, name: string): Promise<{ first: number; durations: number[] }> => {
      const first = model.requests.length;
      for (let i = 0; i < turns; i++) model.play(say(text(`step ${i}`), toolUse('bash', { command: 'true' })));
      model.play(say(text('done')));
      const transcript = await TranscriptStore.open(path.join(tmp, `${name}.jsonl`));
      const loop = new AgentLoop({
        client: new Anthropic({ apiKey: 'sk-bench', baseURL }),
        model: 'claude-opus-5-5',
        maxTokens: 1024,
        tokenBudget: 0,
        commandTimeoutMs: 60_000,
        system: systemPrompt({ allowedDomains: [], mode: 'review', workspaceName: 'bench' }),
        tools: AGENT_TOOLS,
        transcript,
        sandbox: () => Promise.resolve(sb),
        reconnect: () => vm.reconnect(),
      });
      await loop.send(`run ${turns} commands`, new AbortController().signal);
      const durations = transcript.all.flatMap((e) => (e.type === 'tool_result' && e.durationMs !== undefined ? [e.durationMs] : []));
      return { first, durations };
    };

    const { first, durations } = await run(CALLS, 'overhead');
    const gaps: number[] = [];
    for (let i = first; i < first + CALLS; i++) gaps.push(model.timings[i + 1]!.arrivedAt - model.timings[i]!.finishedAt!);
    rows.push({ what: `tool_use complete → result sent (median of ${CALLS})`, value: fmtMs(median(gaps)) });
    rows.push({ what: '  of which the sandboxed command (true)', value: fmtMs(median(durations)), note: 'bwrap + seccomp + cgroup + relays, inside the guest' });
    rows.push({ what: '  engine overhead (SDK, JSON, SSH, agent)', value: fmtMs(median(gaps) - median(durations)) });

    const { first: f2 } = await run(10, 'cache');
    const shares: number[] = [];
    for (let i = f2 + 2; i < f2 + 11; i++) {
      const u = model.usages[i]!;
      const total = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
      shares.push((u.cache_read_input_tokens + u.cache_creation_input_tokens) / total);
    }
    const reads = model.usages.slice(f2 + 2, f2 + 11).reduce((n, u) => n + u.cache_read_input_tokens, 0);
    const all = model.usages.slice(f2 + 2, f2 + 11).reduce((n, u) => n + u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens, 0);
    rows.push({ what: 'input tokens marked cacheable, turns 3–10', value: `${(median(shares) * 100).toFixed(1)} %`, note: 'median per request; goal ≥ 80 %' });
    rows.push({ what: 'input tokens read from cache, turns 3–10', value: `${((reads / all) * 100).toFixed(1)} %` });
    await vm.stop();
  } finally {
    await client.dispose();
    await model.close();
    await rm(tmp, { recursive: true, force: true });
  }
  printTable(`Agent loop (${new Date().toISOString()})`, rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
