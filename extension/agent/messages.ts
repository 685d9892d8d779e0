// Rebuilds the Messages API conversation from a transcript, and marks the stable prefix for prompt
// caching: the tool list, the system prompt, and the last two user turns (the rolling end of the
// conversation), which is at most the four breakpoints the API allows.
import type Anthropic from '@anthropic-ai/sdk';
import type { TranscriptEvent } from './transcript';

type Param = Anthropic.MessageParam;
type UserBlock = Anthropic.TextBlockParam | Anthropic.ImageBlockParam | Anthropic.ToolResultBlockParam;

export function toMessages(events: readonly TranscriptEvent[]): Param[] {
  const out: Param[] = [];
  let pendingUser: UserBlock[] = [];
  const openToolUses = new Set<string>();
  const flushUser = (): void => {
    if (pendingUser.length === 0) return;
    // tool results first: the API wants them right after the assistant's tool_use
    pendingUser.sort((a, b) => (a.type === 'tool_result' ? 0 : 1) - (b.type === 'tool_result' ? 0 : 1));
    out.push({ role: 'user', content: pendingUser });
    pendingUser = [];
  };
  for (const e of events) {
    switch (e.type) {
      case 'user':
        // pasted images go before the words about them, as the API's guide suggests
        for (const image of e.images ?? []) pendingUser.push({ type: 'image', source: { type: 'base64', media_type: image.mediaType, data: image.data } });
        pendingUser.push({ type: 'text', text: e.text });
        break;
      case 'tool_result':
        openToolUses.delete(e.toolUseId);
        pendingUser.push({ type: 'tool_result', tool_use_id: e.toolUseId, content: e.content, is_error: e.isError });
        break;
      case 'assistant': {
        // A tool_use that never got a result (the window closed mid-command) gets one now, or the
        // API would refuse the conversation.
        for (const id of openToolUses) pendingUser.unshift({ type: 'tool_result', tool_use_id: id, content: 'The command was interrupted.', is_error: true });
        openToolUses.clear();
        flushUser();
        const content = e.content as unknown as Anthropic.ContentBlockParam[];
        for (const b of content) if (b.type === 'tool_use') openToolUses.add(b.id);
        out.push({ role: 'assistant', content });
        break;
      }
      default:
        break;
    }
  }
  for (const id of openToolUses) pendingUser.unshift({ type: 'tool_result', tool_use_id: id, content: 'The command was interrupted.', is_error: true });
  flushUser();
  return out;
}

const EPHEMERAL = { type: 'ephemeral' } as const;

/** Returns copies with cache_control on the last block of the last two user messages. */
export function withCacheBreakpoints(messages: Param[]): Param[] {
  const copy = [...messages];
  let marked = 0;
  for (let i = copy.length - 1; i >= 0 && marked < 2; i--) {
    const m = copy[i]!;
    if (m.role !== 'user') continue;
    const blocks: Anthropic.ContentBlockParam[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
    if (blocks.length === 0) continue;
    blocks[blocks.length - 1] = { ...blocks[blocks.length - 1]!, cache_control: EPHEMERAL } as Anthropic.ContentBlockParam;
    copy[i] = { role: 'user', content: blocks };
    marked++;
  }
  return copy;
}

export function toolsWithCache(tools: Anthropic.ToolUnion[]): Anthropic.ToolUnion[] {
  return tools.map((t, i) => (i === tools.length - 1 ? { ...t, cache_control: EPHEMERAL } : t));
}
