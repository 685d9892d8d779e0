// Anthropic's bash tool, run in the task's sandbox. The model expects one persistent shell; each
// command here is a new shell in the task's one sandbox, so the shell's state that matters
// (working directory and exported variables) is saved after each command in the task's private tmp
// and restored before the next. `restart` forgets it. What a call left running with nohup or setsid
// (a dev server) lives on in the sandbox for later calls, until the person stops the task (below)
// or its VM stops.
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { describeStream, MAX_TOOL_OUTPUT_CHARS } from './output';
import { ToolInputError, type AgentTool, type ToolContext, type ToolOutcome } from './types';

const Input = z.union([z.object({ command: z.string().min(1).max(100_000), restart: z.literal(false).optional() }), z.object({ restart: z.literal(true), command: z.string().optional() })]);

const STATE = '/tmp/.cowork-shell';
/**
 * Restores the previous command's directory and exports, runs the command, saves them again. Only
 * builtins on the way in (no mkdir or `$(cat …)` after the first call): under emulation each
 * fork+exec costs ~50 ms, more than the rest of a call's way through the task's sandbox.
 */
export function wrapCommand(command: string): string {
  return [
    `[ -d ${STATE} ] || mkdir -p ${STATE}`,
    `[ -f ${STATE}/env ] && . ${STATE}/env 2>/dev/null`,
    `__cowork_cwd=; { IFS= read -r __cowork_cwd < ${STATE}/cwd; } 2>/dev/null`,
    `cd "\${__cowork_cwd:-/workspace}" 2>/dev/null || cd /workspace; unset __cowork_cwd`,
    `trap 'rc=$?; pwd > ${STATE}/cwd; export -p > ${STATE}/env; exit $rc' EXIT`,
    command,
  ].join('\n');
}

const hooked = new WeakSet<AbortSignal>();
/**
 * The person's Stop (the turn's abort) ends the task's sandbox with everything the agent left
 * running in it, not only the call that runs now; a turn that ends normally keeps it for the next.
 */
function stopSandboxWithTurn(ctx: ToolContext): void {
  if (hooked.has(ctx.signal)) return;
  hooked.add(ctx.signal);
  const { sandbox } = ctx;
  ctx.signal.addEventListener('abort', () => void sandbox.stop().catch(() => undefined), { once: true });
}

export const bashTool: AgentTool = {
  name: 'bash',
  definition: { type: 'bash_20250124', name: 'bash' },
  mayWrite: true,
  async run(raw: unknown, ctx: ToolContext): Promise<ToolOutcome> {
    const parsed = Input.safeParse(raw);
    if (!parsed.success) throw new ToolInputError('bash needs {"command": "..."} (or {"restart": true}).');
    if (parsed.data.restart) {
      await ctx.sandbox.run(`rm -rf ${STATE}`, { signal: ctx.signal, timeoutMs: 30_000 });
      return { content: 'The shell was restarted (working directory and exported variables reset).', isError: false };
    }
    stopSandboxWithTurn(ctx);
    const command = parsed.data.command ?? '';
    // a character split across two chunks of output is shown whole, not as two replacement marks
    const out = new StringDecoder('utf8');
    const err = new StringDecoder('utf8');
    const live = (text: string, stream: 'stdout' | 'stderr'): void => {
      if (text) ctx.onOutput?.(text, stream);
    };
    const r = await ctx.sandbox.run(wrapCommand(command), {
      signal: ctx.signal,
      timeoutMs: ctx.commandTimeoutMs,
      onStdout: (c) => live(out.write(c), 'stdout'),
      onStderr: (c) => live(err.write(c), 'stderr'),
      maxOutputBytes: 4 * 1024 * 1024,
    });
    live(out.end(), 'stdout');
    live(err.end(), 'stderr');
    const parts = [describeStream('stdout', r.stdout, r.droppedBytes.stdout, MAX_TOOL_OUTPUT_CHARS), describeStream('stderr', r.stderr, r.droppedBytes.stderr, MAX_TOOL_OUTPUT_CHARS / 2)].filter(Boolean);
    let status = '';
    let isError = false;
    if (r.aborted) {
      status = 'The command was stopped by the person.';
      isError = true;
    } else if (r.timedOut) {
      status = `The command timed out after ${Math.round(ctx.commandTimeoutMs / 1000)} s and was killed. Run long jobs in the background with a time limit, or split them.`;
      isError = true;
    } else if (r.oomKilled) {
      status = 'The command was killed: it exceeded its memory limit.';
      isError = true;
    } else if (r.signal) {
      status = `The command was killed by signal ${r.signal}.`;
      isError = true;
    } else if (r.code !== 0) status = `Exit code ${r.code}.`;
    if (r.pidsLimited) status += ' (It hit the sandbox process limit.)';
    const content = [...parts, status].filter(Boolean).join('\n') || '(no output)';
    return { content, isError, exitCode: r.code, durationMs: r.durationMs };
  },
};
