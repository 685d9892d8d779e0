// Folds a task's transcript events and live deltas into what the panel shows: turns of text, tool
// cards with their results, the plan, errors, totals. Pure (no DOM) so it is unit-tested.
import type { TranscriptEvent } from '../../extension/protocol/transcript';
import { appendLive, LIVE_MAX_CHARS, type LiveOutput } from '../../extension/agent/tools/output';

export interface ToolCard {
  readonly id: string;
  readonly name: string;
  readonly input: unknown;
  output: string;
  /** live output past the limit: head and tail kept (extension/agent/tools/output.ts appendLive) */
  live?: LiveOutput;
  result?: { content: string; isError: boolean; exitCode?: number | null; durationMs?: number };
  running: boolean;
}

export type Item =
  | { readonly kind: 'user'; readonly text: string }
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
      view.items.push({ kind: 'user', text: e.text });
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
export function applyToolOutput(view: TaskView, id: string, chunk: string): void {
  const card = cards(view).get(id);
  if (!card) return;
  card.live ??= { text: card.output, seen: card.output.length };
  appendLive(card.live, chunk);
  card.output = card.live.text;
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
