// A running command's output as the panel shows it: stdout and stderr interleaved in the order
// they arrived, each piece marked with its stream. Past LIVE_MAX_CHARS the first LIVE_HEAD_CHARS
// and the latest characters are kept, with a count of what was left out between them (as
// extension/agent/tools/output.ts appendLive does for plain text). Pure: used by the host (which
// keeps it per task so a reloaded view gets it back) and by the webview.
import { LIVE_HEAD_CHARS, LIVE_MAX_CHARS } from '../agent/tools/output';

export type Stream = 'stdout' | 'stderr';
export interface Piece {
  stream: Stream;
  text: string;
}

export interface StreamedOutput {
  /** the first characters, in arrival order */
  head: Piece[];
  /** the latest characters once past the limit (empty until then) */
  tail: Piece[];
  /** characters received so far */
  seen: number;
  /** characters left out between head and tail */
  omitted: number;
}

export function emptyOutput(): StreamedOutput {
  return { head: [], tail: [], seen: 0, omitted: 0 };
}

function push(pieces: Piece[], stream: Stream, text: string): void {
  const last = pieces[pieces.length - 1];
  if (last && last.stream === stream) last.text += text;
  else pieces.push({ stream, text });
}

function length(pieces: readonly Piece[]): number {
  return pieces.reduce((n, p) => n + p.text.length, 0);
}

/** Drops characters from the front of `pieces` until at most `keep` remain; returns how many were dropped. */
function trimFront(pieces: Piece[], keep: number): number {
  let over = length(pieces) - keep;
  let dropped = 0;
  while (over > 0 && pieces.length) {
    const first = pieces[0]!;
    if (first.text.length <= over) {
      pieces.shift();
      over -= first.text.length;
      dropped += first.text.length;
    } else {
      first.text = first.text.slice(over);
      dropped += over;
      over = 0;
    }
  }
  return dropped;
}

export function appendOutput(out: StreamedOutput, chunk: string, stream: Stream, max = LIVE_MAX_CHARS, headChars = LIVE_HEAD_CHARS): void {
  if (!chunk) return;
  out.seen += chunk.length;
  if (out.tail.length === 0 && out.omitted === 0) {
    const room = max - length(out.head);
    if (chunk.length <= room) {
      push(out.head, stream, chunk);
      return;
    }
    // past the limit: the head keeps its first headChars, the rest starts the tail
    const headRoom = Math.max(0, headChars - length(out.head));
    if (headRoom < 0 || length(out.head) > headChars) {
      // the head already holds more than headChars: move the excess to the tail
      const all = [...out.head];
      out.head = [];
      let n = 0;
      for (const p of all) {
        const take = Math.max(0, Math.min(p.text.length, headChars - n));
        if (take) push(out.head, p.stream, p.text.slice(0, take));
        if (take < p.text.length) push(out.tail, p.stream, p.text.slice(take));
        n += take;
      }
      push(out.tail, stream, chunk);
    } else {
      if (headRoom) push(out.head, stream, chunk.slice(0, headRoom));
      push(out.tail, stream, chunk.slice(headRoom));
    }
  } else push(out.tail, stream, chunk);
  out.omitted += trimFront(out.tail, max - headChars);
}

/** The output as pieces to show, with a marker piece where characters were left out. */
export function outputPieces(out: StreamedOutput): (Piece | { stream: 'omitted'; text: string })[] {
  if (!out.omitted) return [...out.head, ...out.tail];
  return [...out.head, { stream: 'omitted', text: `[… ${out.omitted.toLocaleString('en-US')} characters not shown …]` }, ...out.tail];
}

export function outputText(out: StreamedOutput): string {
  return outputPieces(out)
    .map((p) => (p.stream === 'omitted' ? `\n${p.text}\n` : p.text))
    .join('');
}
