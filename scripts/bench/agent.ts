// Issue 4 figures: our overhead per tool call (tool_use complete → its result sent back, median of
// 50, with the sandboxed command's own time shown apart), and the share of input tokens served
// from or written to the prompt cache after turn 2 of a 10-turn task (goal ≥ 80 %); and (issue 13)
// how soon a line a command prints in the guest reaches the host as the agent loop's tool_output
// event, the event the panel shows. The guest stamps each line with its own clock
// ($EPOCHREALTIME); the guest clock is compared with the host's NTP-style over a raw SSH channel
// (the host sends a nonce, the guest echoes it with its time; the exchange with the smallest round
// trip gives the offset, ± half that round trip), before and after, so the drift shows too.
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
import type { LiveEvent } from '../../extension/agent/loop';
import { benchAccelerator, figure, fmtMs, median, percentile, printTable, saveFigures, setAccelerator, wants, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const CALLS = Number(process.env.BENCH_TOOL_CALLS ?? 50);
const LINES = Number(process.env.BENCH_OUTPUT_LINES ?? 60);
const nowMs = (): number => performance.timeOrigin + performance.now();

/** Guest clock − host clock in ms, from the echo with the smallest round trip; ± errorMs. */
async function clockOffset(vm: GuestVm, rounds = 40): Promise<{ offsetMs: number; errorMs: number }> {
  const ch = await vm.connection.exec(`bash -c 'while read n; do echo "$n $EPOCHREALTIME"; done'`);
  let buf = '';
  let waiting: ((line: string) => void) | undefined;
  ch.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting?.(line);
    }
  });
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < rounds; i++) {
    const t0 = nowMs();
    const line = await new Promise<string>((r) => {
      waiting = r;
      ch.write(`${i}\n`);
    });
    const t1 = nowMs();
    const [nonce, stamp] = line.split(' ');
    if (nonce !== String(i)) throw new Error(`clock echo out of step: sent ${i}, got ${line}`);
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: Number(stamp) * 1000 - (t0 + t1) / 2 };
  }
  ch.end();
  return { offsetMs: best.offset, errorMs: best.rtt / 2 };
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-agent-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  const model = new ScriptedModel();
  const baseURL = await model.start();
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  const rows: Row[] = [];
  try {
    const vm = await GuestVm.start(client, { vmId: 'bench-agent', workspace: ws, sessionDisk: path.join(tmp, 's.qcow2'), accelerator: benchAccelerator(), cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 2 });
    setAccelerator(vm.info.accelerator);
    const sb = GuestSandbox.for(vm);
    const run = async (turns: number, name: string, command = 'true', onEvent?: (e: LiveEvent) => void): Promise<{ first: number; durations: number[] }> => {
      const first = model.requests.length;
      for (let i = 0; i < turns; i++) model.play(say(text(`step ${i}`), toolUse('bash', { command })));
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
        onEvent,
      });
      await loop.send(`run ${turns} commands`, new AbortController().signal);
      const durations = transcript.all.flatMap((e) => (e.type === 'tool_result' && e.durationMs !== undefined ? [e.durationMs] : []));
      return { first, durations };
    };

    if (wants('output.')) {
      const before = await clockOffset(vm);
      const seen: { at: number; chunk: string }[] = [];
      await run(1, 'firstbyte', `for i in $(seq ${LINES}); do echo "fb $EPOCHREALTIME"; sleep 0.05; done`, (e) => {
        if (e.type === 'tool_output' && e.stream === 'stdout') seen.push({ at: nowMs(), chunk: e.chunk });
      });
      const after = await clockOffset(vm);
      const offset = (before.offsetMs + after.offsetMs) / 2;
      const error = Math.max(before.errorMs, after.errorMs) + Math.abs(after.offsetMs - before.offsetMs) / 2;
      const lat: number[] = [];
      for (const { at, chunk } of seen) for (const m of chunk.matchAll(/^fb (\d+\.\d+)$/gm)) lat.push(at - (Number(m[1]) * 1000 - offset));
      if (lat.length !== LINES) throw new Error(`first byte: expected ${LINES} stamped lines, saw ${lat.length}`);
      figure('output.firstbyte.p50.ms', median(lat), 'ms', "a command's output line: printed in the guest → tool_output event on the host, median");
      figure('output.firstbyte.p95.ms', percentile(lat, 95), 'ms', "a command's output line: printed in the guest → tool_output event on the host, p95", 50);
      figure('output.clock.error.ms', error, 'ms', 'bound on the guest/host clock comparison behind output.firstbyte (half the best echo round trip + drift)');
      rows.push({ what: `output line printed in the guest → on the host (${LINES} lines)`, value: `${fmtMs(percentile(lat, 95))} p95`, note: `median ${fmtMs(median(lat))}; clocks compared to ± ${fmtMs(error)}; goal ≤ 50 ms p95` });
    }
    if (!wants('agent.')) {
      await vm.stop();
      printTable(`Agent loop (${new Date().toISOString()})`, rows);
      saveFigures();
      return;
    }

    const { first, durations } = await run(CALLS, 'overhead');
    const gaps: number[] = [];
    for (let i = first; i < first + CALLS; i++) gaps.push(model.timings[i + 1]!.arrivedAt - model.timings[i]!.finishedAt!);
    rows.push({ what: `tool_use complete → result sent (median of ${CALLS})`, value: fmtMs(median(gaps)) });
    rows.push({ what: '  of which the sandboxed command (true)', value: fmtMs(median(durations)), note: 'bwrap + seccomp + cgroup + relays, inside the guest' });
    rows.push({ what: '  engine overhead (SDK, JSON, SSH, agent)', value: fmtMs(median(gaps) - median(durations)) });
    figure('agent.toolcall.ms', median(gaps), 'ms', `tool_use complete → its result sent (median of ${CALLS})`);
    figure('agent.toolcall.command.ms', median(durations), 'ms', 'of which the sandboxed command (true)');
    figure('agent.toolcall.overhead.ms', median(gaps) - median(durations), 'ms', 'of which the engine (SDK, JSON, SSH, agent)');

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
    figure('agent.cache.marked.pct', median(shares) * 100, '%', 'input tokens marked cacheable, turns 3–10 (median per request)', 80, 'min');
    figure('agent.cache.read.pct', (reads / all) * 100, '%', 'input tokens read from cache, turns 3–10');
    await vm.stop();
  } finally {
    await client.dispose();
    await model.close();
    await rm(tmp, { recursive: true, force: true });
  }
  printTable(`Agent loop (${new Date().toISOString()})`, rows);
  saveFigures();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
