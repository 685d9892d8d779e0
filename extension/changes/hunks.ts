// Line diffs between the host's file and the agent's version, with jsdiff: the unified diff the
// panel shows, and partial accept (only the hunks the person selected in the diff editor reach the
// host file). Pure: no I/O, no `vscode`; line numbers are 0-based.
import { diffLines, structuredPatch } from 'diff';

/** A run of removed and/or added lines, located on both sides. */
export interface Hunk {
  readonly oldStart: number;
  readonly oldLines: number;
  readonly newStart: number;
  readonly newLines: number;
}

/** A selection in the agent's version: lines start..end, inclusive. */
export interface LineRange {
  readonly start: number;
  readonly end: number;
}

export interface UnifiedDiff {
  readonly added: number;
  readonly removed: number;
  /** unified-diff lines without the file headers ("@@ …", " ctx", "-old", "+new"); capped */
  readonly lines: string[];
  /** set when `lines` was cut at maxLines */
  readonly truncated: boolean;
}

export function unifiedDiff(oldText: string, newText: string, opts: { context?: number; maxLines?: number } = {}): UnifiedDiff {
  const patch = structuredPatch('a', 'b', oldText, newText, '', '', { context: opts.context ?? 3 });
  const max = opts.maxLines ?? 2000;
  const lines: string[] = [];
  let added = 0;
  let removed = 0;
  let truncated = false;
  for (const h of patch.hunks) {
    const body = h.lines.filter((l) => !l.startsWith('\\'));
    for (const l of body) {
      if (l.startsWith('+')) added++;
      else if (l.startsWith('-')) removed++;
    }
    if (truncated) continue;
    if (lines.length + body.length + 1 > max) {
      truncated = true;
      continue;
    }
    lines.push(`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, ...body);
  }
  return { added, removed, lines, truncated };
}

function countLines(s: string): number {
  if (!s) return 0;
  const n = s.split('\n').length;
  return s.endsWith('\n') ? n - 1 : n;
}

/** The changed runs between two texts (no context), in order. */
export function hunks(oldText: string, newText: string): Hunk[] {
  return merge(oldText, newText, () => true).hunks;
}

/** Whether a selection touches a hunk (a pure deletion sits between two lines of the new side). */
export function touches(h: Hunk, ranges: readonly LineRange[]): boolean {
  const first = h.newLines ? h.newStart : h.newStart - 1;
  const last = h.newLines ? h.newStart + h.newLines - 1 : h.newStart;
  return ranges.some((r) => r.start <= last && r.end >= first);
}

/**
 * The host text with only the selected hunks of the agent's version applied; every other byte is
 * the host's. Accepting every hunk yields `newText` exactly.
 */
export function applySelectedHunks(oldText: string, newText: string, ranges: readonly LineRange[]): { text: string; applied: number; total: number } {
  const r = merge(oldText, newText, (h) => touches(h, ranges));
  return { text: r.text, applied: r.applied, total: r.hunks.length };
}

function merge(oldText: string, newText: string, take: (h: Hunk) => boolean): { text: string; hunks: Hunk[]; applied: number } {
  const parts = diffLines(oldText, newText);
  const out: string[] = [];
  const found: Hunk[] = [];
  let applied = 0;
  let oldLine = 0;
  let newLine = 0;
  for (let i = 0; i < parts.length; ) {
    const p = parts[i]!;
    if (!p.added && !p.removed) {
      out.push(p.value);
      const n = countLines(p.value);
      oldLine += n;
      newLine += n;
      i++;
      continue;
    }
    // one hunk: the adjacent removed and added parts
    let removed = '';
    let added = '';
    while (i < parts.length && (parts[i]!.added || parts[i]!.removed)) {
      if (parts[i]!.removed) removed += parts[i]!.value;
      else added += parts[i]!.value;
      i++;
    }
    const h: Hunk = { oldStart: oldLine, oldLines: countLines(removed), newStart: newLine, newLines: countLines(added) };
    found.push(h);
    const yes = take(h);
    if (yes) applied++;
    out.push(yes ? added : removed);
    oldLine += h.oldLines;
    newLine += h.newLines;
  }
  return { text: out.join(''), hunks: found, applied };
}
