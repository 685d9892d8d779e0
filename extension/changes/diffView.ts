// A changed file as the panel shows it: a unified diff between two versions when both are UTF-8
// text of a readable size, otherwise a one-line note that says why there is no diff.
import type { ChangeView } from '../protocol/webview';
import { unifiedDiff } from './hunks';

/** Files larger than this show a placeholder instead of a diff in the diff editor. */
export const MAX_DIFF_BYTES = 5 * 1024 * 1024;
/** The panel's inline diffs are for reading, not for huge files: past this it links to the editor. */
export const PANEL_DIFF_BYTES = 512 * 1024;
const PANEL_DIFF_LINES = 400;

export function isBinary(b: Buffer): boolean {
  return b.subarray(0, 8192).includes(0);
}

/** Text for a diff, or undefined when the bytes are not valid UTF-8 (the diff would lie). */
export function asText(b: Buffer): string | undefined {
  const t = b.toString('utf8');
  return Buffer.from(t, 'utf8').equals(b) ? t : undefined;
}

export type ViewBase = Omit<ChangeView, 'added' | 'removed' | 'lines' | 'truncated' | 'note'>;

/** `before` / `after` null: the file does not exist on that side. */
export function diffView(base: ViewBase, before: Buffer | null, after: Buffer | null): ChangeView {
  const empty = { added: 0, removed: 0, lines: [], truncated: false };
  const note = (text: string): ChangeView => ({ ...base, ...empty, note: text });
  const size = Math.max(before?.length ?? 0, after?.length ?? 0);
  if (size > PANEL_DIFF_BYTES) return note(`${size.toLocaleString()} bytes: open the diff editor to compare`);
  if ((before && isBinary(before)) || (after && isBinary(after))) return note(`binary file, ${(after ?? before)!.length.toLocaleString()} bytes`);
  const a = before ? asText(before) : '';
  const b = after ? asText(after) : '';
  if (a === undefined || b === undefined) return note('not UTF-8 text: open the diff editor to compare');
  if (a === b) return note(before && after ? 'content unchanged' : 'empty file');
  return { ...base, ...unifiedDiff(a, b, { maxLines: PANEL_DIFF_LINES }) };
}
