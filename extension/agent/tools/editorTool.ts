// Anthropic's text editor tool (str_replace_based_edit_tool: view, create, str_replace, insert),
// run inside the sandbox by /usr/local/lib/cowork/editor.py as the sandbox user, so it sees and
// changes exactly what a sandboxed command could. Paths are checked here first: absolute, under
// /workspace, no "..", no NUL; the guest checks again after resolving symlinks.
import { posix } from 'node:path';
import { z } from 'zod';
import { truncateMiddle } from './output';
import { ToolInputError, type AgentTool, type ToolContext, type ToolOutcome } from './types';

export const EDITOR_SCRIPT = '/usr/local/lib/cowork/editor.py';
const MAX_TEXT = 2_000_000;

const Path = z.string().min(1).max(4096);
const Input = z.discriminatedUnion('command', [
  z.object({ command: z.literal('view'), path: Path, view_range: z.tuple([z.number().int(), z.number().int()]).optional() }),
  z.object({ command: z.literal('create'), path: Path, file_text: z.string().max(MAX_TEXT) }),
  z.object({ command: z.literal('str_replace'), path: Path, old_str: z.string().min(1).max(MAX_TEXT), new_str: z.string().max(MAX_TEXT).default('') }),
  z.object({ command: z.literal('insert'), path: Path, insert_line: z.number().int().min(0), insert_text: z.string().max(MAX_TEXT).optional(), new_str: z.string().max(MAX_TEXT).optional() }),
]);

/** Returns the normalised path, or throws a ToolInputError that tells the model what is wrong. */
export function checkWorkspacePath(p: string): string {
  if (p.includes('\0')) throw new ToolInputError('The path contains a NUL byte.');
  if (!p.startsWith('/')) throw new ToolInputError(`Paths must be absolute and under /workspace (got "${p}"). Did you mean /workspace/${p}?`);
  if (p.split('/').includes('..')) throw new ToolInputError(`"${p}" contains "..": paths must stay under /workspace.`);
  const norm = posix.normalize(p);
  if (norm !== '/workspace' && !norm.startsWith('/workspace/')) throw new ToolInputError(`"${p}" is outside /workspace; the editor only works on the workspace.`);
  return norm.replace(/\/+$/, '') || '/workspace';
}

export const editorTool: AgentTool = {
  name: 'str_replace_based_edit_tool',
  definition: { type: 'text_editor_20250728', name: 'str_replace_based_edit_tool', max_characters: 30_000 },
  mayWrite: true,
  async run(raw: unknown, ctx: ToolContext): Promise<ToolOutcome> {
    const parsed = Input.safeParse(raw);
    if (!parsed.success) {
      throw new ToolInputError(`Invalid editor input: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}. Commands: view, create, str_replace, insert.`);
    }
    const req = { ...parsed.data, path: checkWorkspacePath(parsed.data.path) };
    const r = await ctx.sandbox.runArgv(['/usr/bin/python3', '-I', EDITOR_SCRIPT], { stdin: JSON.stringify(req), signal: ctx.signal, timeoutMs: 60_000 });
    if (r.aborted) return { content: 'The edit was stopped by the person.', isError: true };
    let result: { ok: boolean; output: string };
    try {
      result = z.object({ ok: z.boolean(), output: z.string() }).parse(JSON.parse(r.stdout.toString('utf8')));
    } catch {
      return { content: `The editor failed (exit ${r.code ?? r.signal}): ${r.stderr.toString('utf8').slice(-2000)}`, isError: true };
    }
    return { content: truncateMiddle(result.output), isError: !result.ok, durationMs: r.durationMs };
  },
};
