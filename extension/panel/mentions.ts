// @mentions in a prompt: `@src/a.ts` or `@src/a.ts:10-20` (lines) names a workspace file. The
// model gets a note listing the mentioned files as /workspace paths (it reads them itself with its
// tools: nothing of the host is copied into the prompt), and a mention that names no file of the
// workspace says so instead of failing silently. Pure: the caller says which paths exist.
import * as path from 'node:path';

export interface Mention {
  /** workspace-relative, '/'-separated */
  readonly path: string;
  readonly lines?: { readonly from: number; readonly to: number };
}

const MENTION = /(?:^|\s)@((?:[^\s@:]|:(?!\d+(?:-\d+)?(?:\s|$)))+)(?::(\d+)(?:-(\d+))?)?(?=\s|$)/g;

/** The mentions of a prompt, in order, each once; paths that leave the workspace are not mentions. */
export function parseMentions(prompt: string): Mention[] {
  const out: Mention[] = [];
  const seen = new Set<string>();
  for (const m of prompt.matchAll(MENTION)) {
    const raw = m[1]!.replace(/[.,;!?)]+$/, '');
    const rel = path.posix.normalize(raw.replace(/^\.\//, ''));
    if (rel === '.' || rel.startsWith('../') || rel === '..' || path.posix.isAbsolute(rel)) continue;
    const from = m[2] ? Number(m[2]) : undefined;
    const to = m[3] ? Number(m[3]) : from;
    const key = `${rel}:${from ?? ''}-${to ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(from !== undefined && to !== undefined && from > 0 && to >= from ? { path: rel, lines: { from, to } } : { path: rel });
  }
  return out;
}

/**
 * The note appended to the prompt for the model, or '' when there are no mentions. `exists` says
 * whether a workspace-relative path is a file of the workspace.
 */
export function mentionNote(mentions: readonly Mention[], exists: (rel: string) => boolean): string {
  if (mentions.length === 0) return '';
  const lines = mentions.map((m) => {
    const where = `/workspace/${m.path}${m.lines ? ` (lines ${m.lines.from}–${m.lines.to})` : ''}`;
    return exists(m.path) ? `- ${where}` : `- ${where}: no such file in the workspace`;
  });
  return `\n\n(Files the person mentioned:\n${lines.join('\n')})`;
}

/** The @mention of an editor's file, with its selected lines (1-based, inclusive) when there are any. */
export function mentionFor(rel: string, selection?: { readonly from: number; readonly to: number }): string {
  const p = /\s/.test(rel) ? undefined : rel;
  if (!p) return `"${rel}" `; // a path with spaces cannot be an @mention; quoted, the model still reads it
  return selection ? `@${p}:${selection.from}-${selection.to} ` : `@${p} `;
}
