// Folds a task's transcript events and live deltas into what the panel shows: turns of text, tool
// cards with their results, the plan, errors, totals. Pure (no DOM) so it is unit-tested.
import type { PromptImage, TranscriptEvent } from '../../extension/protocol/transcript';
import { LIVE_MAX_CHARS } from '../../extension/agent/tools/output';
import { appendOutput, emptyOutput, outputText, type Stream, type StreamedOutput } from '../../extension/panel/liveOutput';

export interface ToolCard {
  readonly id: string;
  readonly name: string;
  readonly input: unknown;
  /** the streamed output as plain text (stdout and stderr in arrival order) */
  output: string;
  /** the output as it streamed, each piece marked stdout or stderr; past the limit head and tail (extension/panel/liveOutput.ts) */
  streamed?: StreamedOutput;
  result?: { content: string; isError: boolean; exitCode?: number | null; durationMs?: number };
  running: boolean;
}

export type Item =
  | { readonly kind: 'user'; readonly text: string; readonly images?: readonly PromptImage[] }
  | { kind: 'assistant'; text: string; live: boolean }
  | { readonly kind: 'tool'; readonly card: ToolCard }
  | { readonly kind: 'error'; readonly message: string; readonly action?: string }
  | { readonly kind: 'stopped'; readonly reason: string };

export interface TaskView {
  items: Item[];
  plan: { content: string; status: string }[];
  tokens: { input: number; output: number; cacheWrite: number; cacheRead: number };
  costUsd: number;
  running: boolean;
  /** tool cards by id (a long transcript must not be scanned for every output chunk) */
  readonly cards: Map<string, ToolCard>;
}

export function emptyView(): TaskView {
  return { items: [], plan: [], tokens: { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 }, costUsd: 0, running: false, cards: new Map() };
}

function cards(view: TaskView): Map<string, ToolCard> {
  return view.cards;
}

function addCard(view: TaskView, card: ToolCard): void {
  view.cards.set(card.id, card);
  view.items.push({ kind: 'tool', card });
}

/** Live (streaming) text is only ever the last item: it is replaced by the final text. */
function dropLiveText(view: TaskView): void {
  const last = view.items[view.items.length - 1];
  if (last?.kind === 'assistant' && last.live) view.items.pop();
}

export function applyEvent(view: TaskView, e: TranscriptEvent): void {
  switch (e.type) {
    case 'user':
      view.items.push(e.images?.length ? { kind: 'user', text: e.text, images: e.images } : { kind: 'user', text: e.text });
      return;
    case 'assistant': {
      dropLiveText(view);
      const known = cards(view);
      for (const block of e.content) {
        if (block.type === 'text' && typeof block.text === 'string' && block.text) view.items.push({ kind: 'assistant', text: block.text, live: false });
        else if (block.type === 'tool_use' && typeof block.id === 'string' && !known.has(block.id)) {
          addCard(view, { id: block.id, name: String(block.name), input: block.input, output: '', running: false });
        }
      }
      return;
    }
    case 'tool_result': {
      const card = cards(view).get(e.toolUseId);
      if (card) {
        card.result = { content: e.content, isError: e.isError, exitCode: e.exitCode, durationMs: e.durationMs };
        card.running = false;
      }
      return;
    }
    case 'plan':
      view.plan = e.items;
      return;
    case 'usage':
      view.tokens.input += e.usage.input;
      view.tokens.output += e.usage.output;
      view.tokens.cacheWrite += e.usage.cacheWrite;
      view.tokens.cacheRead += e.usage.cacheRead;
      view.costUsd += e.costUsd;
      return;
    case 'error':
      view.items.push({ kind: 'error', message: e.message, action: e.action });
      return;
    case 'stopped':
      dropLiveText(view);
      view.items.push({ kind: 'stopped', reason: e.reason });
      return;
    case 'done':
      return;
  }
}

export function applyTextDelta(view: TaskView, text: string): void {
  const last = view.items[view.items.length - 1];
  if (last?.kind === 'assistant' && last.live) last.text += text;
  else view.items.push({ kind: 'assistant', text, live: true });
}

export function applyToolStart(view: TaskView, id: string, name: string, input: unknown): void {
  dropLiveText(view);
  const card = cards(view).get(id);
  if (card) card.running = true;
  else addCard(view, { id, name, input, output: '', running: true });
}

export const MAX_LIVE_OUTPUT = LIVE_MAX_CHARS;
export function applyToolOutput(view: TaskView, id: string, chunk: string, stream: Stream = 'stdout'): void {
  const card = cards(view).get(id);
  if (!card) return;
  card.streamed ??= emptyOutput();
  appendOutput(card.streamed, chunk, stream);
  card.output = outputText(card.streamed);
}

/** The host's copy of a tool call's streamed output (after a reload): replaces what the view had. */
export function applyToolSnapshot(view: TaskView, t: { id: string; name: string; input: unknown; running: boolean; output: StreamedOutput }): void {
  let card = cards(view).get(t.id);
  if (!card) {
    if (!t.running) return; // a card of an older turn the transcript no longer shows
    applyToolStart(view, t.id, t.name, t.input);
    card = cards(view).get(t.id)!;
  }
  card.running = t.running && !card.result;
  card.streamed = { head: t.output.head.map((p) => ({ ...p })), tail: t.output.tail.map((p) => ({ ...p })), seen: t.output.seen, omitted: t.output.omitted };
  card.output = outputText(card.streamed);
}

/**
 * What a finished command's card says beside its exit code, read from the result the model got
 * (extension/agent/tools/bashTool.ts): stopped, timed out, killed by a signal or for memory, and
 * whether output was left out.
 */
export function resultFlags(card: Pick<ToolCard, 'result' | 'streamed'>): string[] {
  const out: string[] = [];
  const c = card.result?.content ?? '';
  if (/The command was stopped by the person\./.test(c)) out.push('stopped');
  if (/The command timed out after/.test(c)) out.push('timed out');
  const sig = /killed by signal (\w+)/.exec(c);
  if (sig) out.push(`signal ${sig[1]}`);
  if (/exceeded its memory limit/.test(c)) out.push('out of memory');
  if (/sandbox process limit/.test(c)) out.push('process limit');
  if (/\[… output truncated|more bytes of output not kept|binary output, \d+ bytes/.test(c) || (card.streamed?.omitted ?? 0) > 0) out.push('truncated');
  return out;
}

/** What a tool card's header says: the command, or the editor's action and file. */
export function describeTool(card: Pick<ToolCard, 'name' | 'input'>): string {
  const input = (card.input ?? {}) as Record<string, unknown>;
  if (card.name === 'bash') return typeof input.command === 'string' ? `$ ${input.command.split('\n')[0]}` : input.restart ? 'restart shell' : 'bash';
  const str = (v: unknown, fallback: string): string => (typeof v === 'string' ? v : fallback);
  if (card.name === 'str_replace_based_edit_tool') return `${str(input.command, 'edit')} ${str(input.path, '')}`;
  if (card.name === 'update_plan') return 'update plan';
  return card.name;
}
