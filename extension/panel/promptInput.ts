// What the panel's prompt box needs from VS Code: the models the picker offers, workspace files for
// an @mention's completion, the active editor as a mention (the @ button beside the model picker), and the note that tells
// the model which files were mentioned. The webview is a web page: what it sends is checked here.
import { statSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Settings } from '../config/settings';
import { MENTION_MATCHES } from '../protocol/webview';
import { mentionFor, mentionNote, parseMentions } from './mentions';

/** The picker's models: cowork.model first (the default), then cowork.models, each once. */
export function offeredModels(settings: Settings): string[] {
  return [...new Set([settings.model, ...settings.models])];
}

/** Why a model the page sent cannot be used, or undefined when it is one the picker offers. */
export function refusedModel(model: string | undefined, settings: Settings): string | undefined {
  if (model === undefined || offeredModels(settings).includes(model)) return undefined;
  return `Cowork: "${model.slice(0, 200)}" is not one of your models (cowork.model, cowork.models); no task was started.`;
}

function workspaceRoot(): string | undefined {
  const f = vscode.workspace.workspaceFolders?.[0];
  return f?.uri.scheme === 'file' ? f.uri.fsPath : undefined;
}

/** Workspace files whose path contains `query` (case-insensitive), shortest first; honours files.exclude and search.exclude. */
export async function findMentionable(query: string): Promise<string[]> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) return [];
  // a glob from a web page: keep only characters a path may need, so it cannot widen the pattern
  const safe = query.replace(/[^\w./-]/g, '');
  const glob = safe ? `**/*${[...safe].map((c) => (/[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c)).join('')}*` : '**/*';
  const uris = await vscode.workspace.findFiles(new vscode.RelativePattern(folder, glob), undefined, 200);
  const rel = uris.map((u) => vscode.workspace.asRelativePath(u, false)).filter((p) => p.toLowerCase().includes(safe.toLowerCase()));
  return rel.sort((a, b) => a.length - b.length || a.localeCompare(b)).slice(0, MENTION_MATCHES);
}

/** The active editor's file (and selected lines) as an @mention, or why there is none. */
export function editorMention(): { text: string } | { notice: string } {
  const editor = vscode.window.activeTextEditor;
  const root = workspaceRoot();
  if (!editor || editor.document.uri.scheme !== 'file' || !root) return { notice: 'Cowork: open a file of this workspace in an editor to attach it.' };
  const rel = path.relative(root, editor.document.uri.fsPath);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return { notice: 'Cowork: the active editor shows a file outside this workspace; the agent sees only the workspace.' };
  const s = editor.selection;
  const lines = s.isEmpty ? undefined : { from: s.start.line + 1, to: s.end.character === 0 && s.end.line > s.start.line ? s.end.line : s.end.line + 1 };
  return { text: mentionFor(rel.split(path.sep).join('/'), lines) };
}

/** The prompt with a note naming the files it mentions (unchanged when it mentions none). */
export function withMentionNote(text: string): string {
  const root = workspaceRoot();
  const mentions = parseMentions(text);
  if (!root || mentions.length === 0) return text;
  const isFile = (rel: string): boolean => {
    try {
      return statSync(path.join(root, rel)).isFile();
    } catch {
      return false;
    }
  };
  return text + mentionNote(mentions, isFile);
}
