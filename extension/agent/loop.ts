// The agent loop: stream a turn from the Messages API (@anthropic-ai/sdk), run the tools it asks
// for in the task's sandbox, send the results back, until the model ends its turn, the person
// stops it, the token budget runs out, or the API fails. It lives in the extension host; the API
// key never leaves it. Retries of 429/529/5xx (honouring retry-after) are the SDK's.
import Anthropic from '@anthropic-ai/sdk';
import { GuestError } from '../guest/errors';
import type { GuestSandbox } from '../guest/sandbox';
import { costUsd } from './cost';
import { explainApiError } from './errors';
import { toMessages, toolsWithCache, withCacheBreakpoints } from './messages';
import { ToolInputError, type AgentTool, type ToolOutcome } from './tools/types';
import type { PromptImage } from '../protocol/transcript';
import type { PlanItem, TranscriptEvent, TranscriptStore, Usage } from './transcript';

export type LiveEvent =
  | { readonly type: 'text_delta'; readonly text: string }
  | { readonly type: 'tool_input'; readonly id: string; readonly name: string; readonly partialJson: string }
  | { readonly type: 'tool_start'; readonly id: string; readonly name: string; readonly input: unknown }
  | { readonly type: 'tool_output'; readonly id: string; readonly chunk: string; readonly stream: 'stdout' | 'stderr' }
  | { readonly type: 'transcript'; readonly event: TranscriptEvent }
  | { readonly type: 'turn_start' }
  | { readonly type: 'turn_end' };

export type TurnOutcome = 'done' | 'stopped' | 'error' | 'budget';

export interface AgentLoopOptions {
  readonly client: Anthropic;
  readonly model: string;
  readonly maxTokens: number;
  /** input + output + cache tokens for one turn (the person's message and the work it starts); 0 = no limit */
  readonly tokenBudget: number;
  readonly commandTimeoutMs: number;
  readonly system: string;
  readonly tools: readonly AgentTool[];
  readonly transcript: TranscriptStore;
  readonly sandbox: () => Promise<GuestSandbox>;
  /** re-establishes the SSH connection once after it dropped */
  readonly reconnect: () => Promise<void>;
  readonly onEvent?: (e: LiveEvent) => void;
  /** after a tool that may have changed files */
  readonly onWrite?: () => void;
  /**
   * Awaited after every tool call, before the next tool call or model turn starts. The task scans
   * the changes of a call that may have written (and in direct mode applies them) here, while no
   * command of the agent runs: the scan and the reads that feed review never race the next
   * command. A process the agent started with nohup or setsid keeps running in the task's sandbox
   * and can still be writing (docs/sandbox.md, class 6). A failure is the hook's to report.
   */
  readonly afterToolCall?: (call: { readonly name: string; readonly mayWrite: boolean }) => Promise<void>;
}

export class AgentLoop {
  private readonly byName: Map<string, AgentTool>;

  constructor(private readonly o: AgentLoopOptions) {
    this.byName = new Map(o.tools.map((t) => [t.name, t]));
  }

  private record(e: Parameters<TranscriptStore['append']>[0]): void {
    const full = this.o.transcript.append(e);
    this.o.onEvent?.({ type: 'transcript', event: full });
  }

  private budgetUsed(): number {
    // the current turn only: a follow-up after a budget stop grants another round
    const t = this.o.transcript.turnTotals();
    return t.input + t.output + t.cacheWrite + t.cacheRead;
  }

  /** Adds the person's message and runs until the model ends its turn (or something stops it). */
  async send(userText: string, signal: AbortSignal, images?: readonly PromptImage[]): Promise<TurnOutcome> {
    this.record({ type: 'user', text: userText, ...(images?.length ? { images: [...images] } : {}) });
    this.o.onEvent?.({ type: 'turn_start' });
    try {
      return await this.run(signal);
    } finally {
      await this.o.transcript.flush();
      this.o.onEvent?.({ type: 'turn_end' });
    }
  }

  private async run(signal: AbortSignal): Promise<TurnOutcome> {
    for (;;) {
      if (signal.aborted) return this.stopped(signal);
      if (this.o.tokenBudget > 0 && this.budgetUsed() >= this.o.tokenBudget) {
        this.record({ type: 'error', message: `The task used its token budget (${this.budgetUsed().toLocaleString('en-US')} of ${this.o.tokenBudget.toLocaleString('en-US')} tokens) and was stopped.`, action: 'Raise cowork.agent.tokenBudget, or continue the task with a follow-up to grant another round.' });
        return 'budget';
      }
      let message: Anthropic.Message;
      try {
        message = await this.streamTurn(signal);
      } catch (err) {
        if (signal.aborted || err instanceof Anthropic.APIUserAbortError) return this.stopped(signal);
        const { message: text, action } = explainApiError(err);
        this.record({ type: 'error', message: text, action });
        return 'error';
      }
      this.record({ type: 'assistant', content: message.content as unknown as Record<string, unknown>[] });
      const usage: Usage = {
        input: message.usage.input_tokens,
        output: message.usage.output_tokens,
        cacheWrite: message.usage.cache_creation_input_tokens ?? 0,
        cacheRead: message.usage.cache_read_input_tokens ?? 0,
      };
      this.record({ type: 'usage', usage, costUsd: costUsd(this.o.model, usage) });
      const toolUses = message.content.filter((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
      if (message.stop_reason !== 'tool_use' || toolUses.length === 0) {
        if (message.stop_reason === 'max_tokens') this.record({ type: 'error', message: 'The reply hit the max_tokens limit and was cut short.', action: 'Continue the task, or raise cowork.agent.maxTokens.' });
        this.record({ type: 'done' });
        return 'done';
      }
      for (const [i, use] of toolUses.entries()) {
        if (signal.aborted) {
          for (const rest of toolUses.slice(i)) this.record({ type: 'tool_result', toolUseId: rest.id, name: rest.name, content: `Not run: ${stopReason(signal)}`, isError: true });
          return this.stopped(signal);
        }
        const outcome = await this.runTool(use, signal);
        this.record({ type: 'tool_result', toolUseId: use.id, name: use.name, content: outcome.content, isError: outcome.isError, exitCode: outcome.exitCode, durationMs: outcome.durationMs });
        const mayWrite = this.byName.get(use.name)?.mayWrite ?? false;
        if (mayWrite) this.o.onWrite?.();
        await this.o.afterToolCall?.({ name: use.name, mayWrite }).catch(() => undefined);
      }
    }
  }

  private stopped(signal: AbortSignal): TurnOutcome {
    this.record({ type: 'stopped', reason: stopReason(signal) });
    return 'stopped';
  }

  private async streamTurn(signal: AbortSignal): Promise<Anthropic.Message> {
    const params: Anthropic.MessageCreateParamsNonStreaming = {
      model: this.o.model,
      max_tokens: this.o.maxTokens,
      system: [{ type: 'text', text: this.o.system, cache_control: { type: 'ephemeral' } }],
      tools: toolsWithCache(this.o.tools.map((t) => t.definition)),
      messages: withCacheBreakpoints(toMessages(this.o.transcript.all)),
    };
    const stream = this.o.client.messages.stream(params, { signal });
    const blocks = new Map<number, { id: string; name: string; json: string }>();
    stream.on('streamEvent', (ev) => {
      if (ev.type === 'content_block_start' && ev.content_block.type === 'tool_use') {
        blocks.set(ev.index, { id: ev.content_block.id, name: ev.content_block.name, json: '' });
      } else if (ev.type === 'content_block_delta') {
        if (ev.delta.type === 'text_delta') this.o.onEvent?.({ type: 'text_delta', text: ev.delta.text });
        else if (ev.delta.type === 'input_json_delta') {
          const b = blocks.get(ev.index);
          if (b) {
            b.json += ev.delta.partial_json;
            this.o.onEvent?.({ type: 'tool_input', id: b.id, name: b.name, partialJson: b.json });
          }
        }
      }
    });
    return stream.finalMessage();
  }

  private async runTool(use: Anthropic.ToolUseBlock, signal: AbortSignal): Promise<ToolOutcome> {
    const tool = this.byName.get(use.name);
    if (!tool) return { content: `There is no tool named "${use.name}". Available: ${[...this.byName.keys()].join(', ')}.`, isError: true };
    this.o.onEvent?.({ type: 'tool_start', id: use.id, name: use.name, input: use.input });
    const attempt = async (): Promise<ToolOutcome> =>
      tool.run(use.input, {
        sandbox: await this.o.sandbox(),
        signal,
        commandTimeoutMs: this.o.commandTimeoutMs,
        onOutput: (chunk, stream) => this.o.onEvent?.({ type: 'tool_output', id: use.id, chunk, stream }),
        setPlan: (items: PlanItem[]) => this.record({ type: 'plan', items }),
      });
    try {
      return await attempt();
    } catch (err) {
      if (err instanceof ToolInputError) return { content: err.message, isError: true };
      if (err instanceof GuestError && err.code === 'disconnected' && !signal.aborted) {
        try {
          await this.o.reconnect();
        } catch (again) {
          return { content: `The connection to the VM dropped and could not be restored: ${String(again)}`, isError: true };
        }
        return { content: 'The connection to the VM dropped during this call and was restored; the command was interrupted. Check its effects and run it again if needed.', isError: true };
      }
      if (err instanceof GuestError && err.code === 'aborted') return { content: `Not run: ${stopReason(signal)}`, isError: true };
      return { content: `The tool failed: ${err instanceof Error ? err.message : String(err)}`, isError: true };
    }
  }
}

/** Why the turn was aborted: the task's own reason (a string, e.g. the VM went away) or the person's Stop. */
function stopReason(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'The person stopped the task.';
}
