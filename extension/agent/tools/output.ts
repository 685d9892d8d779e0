// What a command's output looks like to the model: text as is, binary output replaced by a note,
// and anything past the limit cut in the middle with a marker that says how much was left out.

export const MAX_TOOL_OUTPUT_CHARS = 30_000;

export function looksBinary(buf: Buffer): boolean {
  const sample = buf.subarray(0, 8192);
  if (sample.includes(0)) return true;
  const text = sample.toString('utf8');
  const bad = (text.match(/\uFFFD/g) ?? []).length;
  return bad > 8 && bad / Math.max(1, text.length) > 0.02;
}

export function truncateMiddle(text: string, limit = MAX_TOOL_OUTPUT_CHARS, extraDroppedBytes = 0): string {
  if (text.length <= limit && extraDroppedBytes === 0) return text;
  if (text.length <= limit) return `${text}\n[… ${extraDroppedBytes} more bytes of output not kept …]`;
  const head = Math.floor(limit * 0.4);
  const tail = limit - head;
  const cut = text.length - head - tail;
  const cutBytes = Buffer.byteLength(text.slice(head, text.length - tail)) + extraDroppedBytes;
  return `${text.slice(0, head)}\n[… output truncated: ${cutBytes} bytes (${cut} characters) left out …]\n${text.slice(text.length - tail)}`;
}

export function describeStream(name: string, buf: Buffer, droppedBytes: number, limit: number): string {
  if (buf.length === 0 && droppedBytes === 0) return '';
  if (looksBinary(buf)) return `[${name}: binary output, ${buf.length + droppedBytes} bytes, not shown]`;
  return truncateMiddle(buf.toString('utf8'), limit, droppedBytes);
}

/** How much of a running command's output the panel keeps: its first and its last characters. */
export const LIVE_HEAD_CHARS = 4_000;
export const LIVE_MAX_CHARS = 20_000;

export interface LiveOutput {
  /** what is shown: all of it, or the head, a marker with the count left out, and the tail */
  text: string;
  /** characters received so far (keeps growing past the limit, so a view knows to update) */
  seen: number;
  head?: string;
  tail?: string;
}

/**
 * Appends a chunk of live output, keeping the first LIVE_HEAD_CHARS and the latest characters up
 * to LIVE_MAX_CHARS in all: a long build keeps showing how it started and where it is now.
 */
export function appendLive(live: LiveOutput, chunk: string, max = LIVE_MAX_CHARS, headChars = LIVE_HEAD_CHARS): void {
  live.seen += chunk.length;
  if (live.head === undefined) {
    const all = live.text + chunk;
    if (all.length <= max) {
      live.text = all;
      return;
    }
    live.head = all.slice(0, headChars);
    live.tail = all.slice(-(max - headChars));
  } else {
    live.tail = (live.tail + chunk).slice(-(max - headChars));
  }
  const left = live.seen - live.head.length - live.tail.length;
  live.text = `${live.head}\n[… ${left.toLocaleString('en-US')} characters not shown …]\n${live.tail}`;
}
