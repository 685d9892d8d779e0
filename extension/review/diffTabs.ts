// The diff editors of a task's proposed changes (ReviewController.openDiff), found among the open
// tabs by their URIs. A change that leaves the change set (accepted, discarded, or undone by the
// agent) closes its diff: left open, it would go on showing a change that no longer exists (the
// agent's side is a read-only document VS Code does not read again), as Git's diff of a file closes
// its meaning once the file is staged and committed.
import * as vscode from 'vscode';

/** The agent's side of a diff: cowork-proposed:/<task id>/<name>?<raw path, base64>!<sha256> */
export const PROPOSED_SCHEME = 'cowork-proposed';
/** The missing side of an added or deleted file: cowork-empty:/<task id>/<name>?<raw path, base64> */
export const EMPTY_SCHEME = 'cowork-empty';

/** The change (raw path, base64) whose diff this tab shows for the task, or undefined. */
export function diffTabChange(tab: vscode.Tab, taskId: string): string | undefined {
  const input = tab.input;
  if (!(input instanceof vscode.TabInputTextDiff)) return undefined;
  for (const uri of [input.modified, input.original]) {
    if ((uri.scheme === PROPOSED_SCHEME || uri.scheme === EMPTY_SCHEME) && uri.path.startsWith(`/${taskId}/`) && uri.query) return uri.query.split('!')[0];
  }
  return undefined;
}

/**
 * Closes the task's diff tabs whose change is not in `listed` (raw paths, base64). A tab with unsaved
 * edits stays (closing it would ask about them in the middle of an Accept); its host side is the
 * file itself, so it shows the current state. Returns how many tabs were closed.
 */
export function closeDiffsNotListed(taskId: string, listed: ReadonlySet<string>): Promise<number> {
  return closeTabsNotIn((t) => diffTabChange(t, taskId), listed);
}

/** Closes the tabs `changeOf` maps to a change not in `keep`, except one with unsaved edits. */
async function closeTabsNotIn(changeOf: (tab: vscode.Tab) => string | undefined, keep: ReadonlySet<string>): Promise<number> {
  const gone = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => {
    const change = changeOf(t);
    return change !== undefined && !keep.has(change) && !hasUnsavedSide(t);
  });
  if (!gone.length) return 0;
  await vscode.window.tabGroups.close(gone, true);
  return gone.length;
}

/** The schemes of a direct-mode diff (AppliedGroup.openDiff); kept here so both groups share one matcher. */
export const BEFORE_SCHEME = 'cowork-before';
export const HOST_SCHEME = 'cowork-host';

/**
 * The missing side of a direct-mode diff (an added or deleted file): under /<task id>.direct/ so the
 * review group's closeDiffsNotListed, which matches /<task id>/, never takes it for a proposed change.
 */
export function directEmptyUri(taskId: string, display: string, pathB64: string): vscode.Uri {
  return vscode.Uri.from({ scheme: EMPTY_SCHEME, path: `/${taskId}.direct/${display}`, query: pathB64 });
}

/** The recorded direct-mode change (raw path, base64) whose diff this tab shows for the task, or undefined. */
export function directDiffTabChange(tab: vscode.Tab, taskId: string): string | undefined {
  const input = tab.input;
  if (!(input instanceof vscode.TabInputTextDiff)) return undefined;
  // the left side tells: the person's version before the task, or the direct-mode empty side of an
  // added file (a proposed change's diff has the host file or /<task id>/ on its left, never these)
  const left = input.original;
  if (!left.query) return undefined;
  if (left.scheme === BEFORE_SCHEME && left.path.startsWith(`/${taskId}/`)) return left.query;
  if (left.scheme === EMPTY_SCHEME && left.path.startsWith(`/${taskId}.direct/`)) return left.query;
  return undefined;
}

/**
 * Direct mode's counterpart of closeDiffsNotListed: after Revert (or Revert All) a file leaves the
 * record, and its diff (your version before the task ↔ the file now) would go on showing a change
 * that was undone. A tab with unsaved edits stays. Returns how many tabs were closed.
 */
export function closeDirectDiffsNotRecorded(taskId: string, recorded: ReadonlySet<string>): Promise<number> {
  return closeTabsNotIn((t) => directDiffTabChange(t, taskId), recorded);
}

/**
 * True when either side of a diff tab has unsaved edits. Tab.isDirty follows the right-hand side
 * only; in review mode the person's own file is on the left, and an edit there must keep its tab.
 */
function hasUnsavedSide(tab: vscode.Tab): boolean {
  if (tab.isDirty) return true;
  const input = tab.input;
  if (!(input instanceof vscode.TabInputTextDiff)) return false;
  const sides = new Set([input.original.toString(), input.modified.toString()]);
  return vscode.workspace.textDocuments.some((d) => d.isDirty && sides.has(d.uri.toString()));
}
