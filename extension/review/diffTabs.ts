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
export async function closeDiffsNotListed(taskId: string, listed: ReadonlySet<string>): Promise<number> {
  const gone = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => {
    const change = diffTabChange(t, taskId);
    return change !== undefined && !listed.has(change) && !t.isDirty;
  });
  if (!gone.length) return 0;
  await vscode.window.tabGroups.close(gone, true);
  return gone.length;
}
