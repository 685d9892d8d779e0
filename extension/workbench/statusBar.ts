// A status bar item: how many tasks run and the state of their VMs; clicking it reveals the panel.
import * as vscode from 'vscode';
import type { TaskManager } from '../session/taskManager';

export interface StatusBar {
  /** `disk`: each task's session disk usage in bytes, when known (shown in the tooltip) */
  update(m: TaskManager | undefined, disk?: ReadonlyMap<string, number>): void;
  readonly item: vscode.StatusBarItem;
}

/** `changes(taskId)`: how many changes of that task wait for review. */
export function createStatusBar(revealCommand: string, changes: (taskId: string) => number): StatusBar {
  const item = vscode.window.createStatusBarItem('cowork.status', vscode.StatusBarAlignment.Left, 50);
  item.name = 'Cowork';
  item.command = revealCommand;
  let lastDisk: ReadonlyMap<string, number> | undefined;
  const update = (m: TaskManager | undefined, disk?: ReadonlyMap<string, number>): void => {
    if (disk) lastDisk = disk;
    const tasks = m?.list() ?? [];
    const running = tasks.filter((t) => t.state === 'running' || t.state === 'booting' || t.state === 'queued');
    const booting = tasks.filter((t) => t.state === 'booting').length;
    const review = tasks.filter((t) => t.state !== 'running' && changes(t.id) > 0);
    item.text = running.length ? `$(sync~spin) Cowork: ${running.length} running${booting ? ` (${booting} booting VM)` : ''}` : `$(vm) Cowork${review.length ? `: ${review.length} to review` : ''}`;
    const line = (t: (typeof tasks)[number]): string => {
      const n = changes(t.id);
      const bytes = lastDisk?.get(t.id);
      return `${t.title} — ${t.state}${n ? `, ${n} change(s)` : ''}${bytes ? `, disk ${(bytes / 1048576).toFixed(0)} MiB` : ''}`;
    };
    item.tooltip = tasks.length ? `${tasks.map(line).join('\n')}\n\nOpen the Cowork panel` : 'Open the Cowork panel';
    item.show();
  };
  update(undefined);
  return { update, item };
}
