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
