// A status bar item: how many tasks run and the state of their VMs; clicking it reveals the panel.
import * as vscode from 'vscode';
import type { TaskManager } from '../session/taskManager';

export interface StatusBar {
  update(m: TaskManager | undefined): void;
  readonly item: vscode.StatusBarItem;
}

/** `changes(taskId)`: how many changes of that task wait for review. */
export function createStatusBar(revealCommand: string, changes: (taskId: string) => number): StatusBar {
  const item = vscode.window.createStatusBarItem('cowork.status', vscode.StatusBarAlignment.Left, 50);
  item.name = 'Cowork';
  item.command = revealCommand;
  const update = (m: TaskManager | undefined): void => {
    const tasks = m?.list() ?? [];
    const running = tasks.filter((t) => t.state === 'running' || t.state === 'booting' || t.state === 'queued');
    const booting = tasks.filter((t) => t.state === 'booting').length;
    const review = tasks.filter((t) => t.state !== 'running' && changes(t.id) > 0);
    item.text = running.length ? `$(sync~spin) Cowork: ${running.length} running${booting ? ` (${booting} booting VM)` : ''}` : `$(vm) Cowork${review.length ? `: ${review.length} to review` : ''}`;
    item.tooltip = running.length ? running.map((t) => `${t.title} — ${t.state}`).join('\n') : 'Open the Cowork panel';
    item.show();
  };
  update(undefined);
  return { update, item };
}
