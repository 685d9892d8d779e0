// The Cowork side panel: the task list, the selected task's streaming transcript, its changes (as
// diffs), its VM and its blocked network requests. Plain DOM; components come from ./ui; state
// comes from the host only.
//
// The page is built once and updated in place: the prompt and follow-up boxes keep what the person
// is typing while events stream in; the transcript (./view/transcriptView) re-renders only the
// items that changed and the changes (./view/changesView) only when the host sends new ones, so a
// 5,000-event task stays smooth. Updates are batched to one per animation frame.
import { HostToWebview, type BlockedView, type ChangeView, type TaskSummary, type VmStatusView, type VmUsageView, type WebviewToHost } from '../extension/protocol/webview';
import { PromptExtras } from './promptExtras';
import { button, divider, iconButton, registerComponents, select, tag, textArea, textField } from './ui';
import { ChangesView, type ChangeActions } from './view/changesView';
import { age, bytes, el } from './view/dom';
import { applyEvent, applyTextDelta, applyToolOutput, applyToolSnapshot, applyToolStart, emptyView, type TaskView } from './view/transcriptModel';
import { TranscriptView } from './view/transcriptView';

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();
const send = (msg: WebviewToHost): void => vscode.postMessage(msg);

interface PanelState {
  vm: VmStatusView;
  trusted: boolean;
  settingsProblem: string | null;
  scripted: boolean;
  /** the model picker's choices, the default first */
  models: string[];
  /** what the host or the prompt box said about the last action (a refused model or image), newest last */
  transient: string[];
  tasks: TaskSummary[];
  /** prompts sent before, newest first (from the host) */
  history: string[];
  selected: string | null;
  view: TaskView;
  taskVm: VmStatusView | null;
  usage: VmUsageView | null;
  changes: ChangeView[];
  blocked: BlockedView[];
  blockedTotal: number;
  lastCommand?: { command: string; output: string; exit: string };
}
const saved = vscode.getState() as { selected?: string | null } | undefined;
const state: PanelState = { vm: { state: 'stopped' }, trusted: true, settingsProblem: null, scripted: false, models: [], transient: [], tasks: [], history: [], selected: saved?.selected ?? null, view: emptyView(), taskVm: null, usage: null, changes: [], blocked: [], blockedTotal: 0 };

const STATE_LABEL: Record<VmStatusView['state'], string> = { stopped: 'stopped', booting: 'booting…', ready: 'ready', stopping: 'stopping…', failed: 'failed' };
const TASK_LABEL: Record<TaskSummary['state'], string> = { queued: 'queued', booting: 'booting VM', running: 'running', idle: 'waiting for review', failed: 'failed', stopped: 'stopped' };

// ---- the page, built once ----------------------------------------------------------------------

registerComponents();
const app = document.getElementById('app')!;
const notices = el('div', 'notices');
const newTask = el('section', 'new-task');
const prompt = textArea({ placeholder: 'Describe a task for Claude… (@ mentions a file; paste an image; Ctrl+Enter sends)', id: 'prompt' });
const notify = (message: string): void => {
  state.transient = [...state.transient.slice(-2), message];
  scheduleRender();
};
const promptExtras = new PromptExtras(prompt, send, notify);
const modelPicker = select({ id: 'model', label: 'Model for the new task (cowork.models)' });
const delegate = (): void => {
  const text = prompt.value.trim();
  if (!text) return;
  const images = promptExtras.images;
  send({ type: 'delegate', prompt: text, ...(modelPicker.value ? { model: modelPicker.value } : {}), ...(images.length ? { images } : {}) });
  prompt.value = '';
  promptExtras.clear();
  state.transient = [];
  historyAt = -1;
};
prompt.addEventListener('keydown', (e) => (e.ctrlKey || e.metaKey) && e.key === 'Enter' && delegate());
// Up and Down walk through what was sent before (prompts and follow-ups), while the box is empty
// or shows an entry of that history unchanged: typing is never replaced
let historyAt = -1;
const walkHistory = (box: HTMLElement & { value: string }, e: KeyboardEvent): void => {
  if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
  if (box.value !== '' && box.value !== state.history[historyAt]) return;
  const next = historyAt + (e.key === 'ArrowUp' ? 1 : -1);
  if (next < -1 || next >= state.history.length) return;
  e.preventDefault();
  historyAt = next;
  box.value = next === -1 ? '' : state.history[next]!;
};
prompt.addEventListener('keydown', (e) => walkHistory(prompt, e));
const attach = iconButton('mention', "Mention the active editor's file or selected lines", () => send({ type: 'attachEditor' }));
attach.id = 'attach-editor';
const promptActions = el('div', 'row prompt-actions');
promptActions.append(modelPicker, attach, button('Delegate', { icon: 'send', id: 'delegate', onClick: delegate }));
newTask.append(prompt, promptExtras.root, promptActions);
const taskList = el('ul', 'tasks');
taskList.setAttribute('aria-label', 'Tasks');

const taskView = el('section', 'task-view');
const strip = el('div', 'row status-strip');
const vmNote = el('div');
const plan = el('ol', 'plan');
plan.setAttribute('aria-label', 'Plan');
const blocked = el('div', 'blocked');
const changes = new ChangesView();
const transcript = new TranscriptView(() => scheduleRender());
const followBox = el('div', 'follow-up');
const follow = textArea({ placeholder: 'Follow up… (Ctrl+Enter to send)', id: 'follow-up', rows: 2 });
const followExtras = new PromptExtras(follow, send, notify);
const sendFollowUp = (): void => {
  const text = follow.value.trim();
  if (!text || !state.selected) return;
  const images = followExtras.images;
  send({ type: 'followUp', taskId: state.selected, text, ...(images.length ? { images } : {}) });
  follow.value = '';
  followExtras.clear();
  state.transient = [];
  historyAt = -1;
};
follow.addEventListener('keydown', (e) => (e.ctrlKey || e.metaKey) && e.key === 'Enter' && sendFollowUp());
follow.addEventListener('keydown', (e) => walkHistory(follow, e));
followBox.append(follow, followExtras.root, button('Send', { icon: 'send', id: 'send-follow-up', onClick: sendFollowUp }));
// The side panel stacks everything; the editor tab (Open Task in Editor) shows one task, wide: the
// transcript beside the plan, blocked requests and changes (media/panel.css).
const editorMode = document.body.dataset.mode === 'editor';
if (editorMode) {
  const main = el('div', 'task-main');
  main.append(transcript.earlier, transcript.list, followBox);
  const aside = el('div', 'task-aside');
  aside.append(plan, blocked, changes.root);
  const columns = el('div', 'task-columns');
  columns.append(main, aside);
  taskView.append(strip, vmNote, columns);
} else taskView.append(strip, vmNote, plan, blocked, changes.root, transcript.earlier, transcript.list, followBox);

const vmBox = el('details', 'vm');
const vmSummary = el('summary');
const vmLabel = el('span', 'vm-state');
vmLabel.id = 'vm-state';
vmSummary.append(vmLabel);
const vmButtons = el('div', 'row');
const command = textField({ placeholder: 'Run a command in the smoke-test VM (e.g. uname -a)', id: 'command' });
command.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && command.value.trim()) send({ type: 'runCommand', command: command.value.trim() });
});
const commandOutput = el('pre', 'output');
vmBox.append(vmSummary, vmButtons, command, commandOutput);

const dividers = [divider(), divider()];
app.append(notices, newTask, taskList, dividers[0]!, taskView, dividers[1]!, vmBox);

// ---- the other regions, small enough to rebuild ---------------------------------------------------

function renderTaskList(): void {
  taskList.hidden = state.tasks.length === 0 || editorMode;
  taskList.replaceChildren(
    ...state.tasks.map((t) => {
      const li = el('li', `task-item ${t.id === state.selected ? 'selected' : ''}`);
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      li.setAttribute('aria-current', String(t.id === state.selected));
      li.dataset.taskId = t.id;
      li.append(el('span', 'task-title', t.title));
      if (t.mode === 'direct') li.append(tag('direct'));
      if (t.changes) li.append(el('span', 'muted changes-count', `${t.changes} change${t.changes === 1 ? '' : 's'}`));
      // an idle task with nothing left to review is done
      const label = t.state === 'idle' && t.changes === 0 ? 'done' : TASK_LABEL[t.state];
      li.append(el('span', `badge state-${t.state}`, label), el('span', 'muted', age(t.createdAt)));
      const select = (): void => send({ type: 'selectTask', taskId: t.id });
      li.addEventListener('click', select);
      li.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && select());
      return li;
    }),
  );
}

function renderStrip(task: TaskSummary): void {
  const vm = state.taskVm ?? { state: 'stopped' as const };
  const vmState = el('span', `vm-state state-${vm.state}`, `This task's VM: ${STATE_LABEL[vm.state]}`);
  vmState.id = 'task-vm-state';
  vmState.title = 'Each task runs in a VM of its own; its changes stay there until you accept them.';
  const parts: HTMLElement[] = [vmState];
  if (vm.accelerator) parts.push(tag(vm.accelerator));
  const u = state.usage;
  if (u && vm.state === 'ready') {
    const bits = [u.cpuPercent !== undefined ? `cpu ${Math.round(u.cpuPercent)}%` : '', u.rssBytes !== undefined ? `mem ${bytes(u.rssBytes)}${u.warmRssBytes !== undefined ? ` (+${bytes(u.warmRssBytes)} warm VM)` : ''}` : '', u.diskBytes !== undefined ? `disk ${bytes(u.diskBytes)}` : ''].filter(Boolean);
    const usage = el('span', 'muted', bits.join(' · '));
    usage.id = 'task-vm-usage';
    usage.title = 'CPU (100% = one core), resident memory and session disk of this task\'s VM; the warm VM (cowork.vm.warm) is the next task\'s, booted ahead';
    parts.push(usage);
  }
  const t = state.view.tokens;
  parts.push(el('span', 'muted', `${(t.input + t.cacheWrite + t.cacheRead).toLocaleString()} in · ${t.output.toLocaleString()} out · ~$${state.view.costUsd.toFixed(3)}`));
  if (state.changes.length) {
    const link = el('button', 'link', `${state.changes.length} change${state.changes.length === 1 ? '' : 's'}`);
    link.id = 'reveal-changes';
    link.title = 'Show them in the Source Control view';
    link.addEventListener('click', () => send({ type: 'revealChanges', taskId: task.id }));
    parts.push(link);
  }
  if (!editorMode) {
    const wide = iconButton('link-external', 'Open Task in Editor (wide)', () => send({ type: 'openInEditor', taskId: task.id }));
    wide.id = 'open-in-editor';
    parts.push(wide);
  }
  if (isRunning(task)) parts.push(button('Stop', { icon: 'debug-stop', secondary: true, id: 'stop-task', onClick: () => send({ type: 'stopTask', taskId: task.id }) }));
  strip.replaceChildren(...parts);

  vmNote.replaceChildren();
  if (vm.state === 'booting' && vm.imageProgress && vm.imageProgress.fraction < 1) vmNote.append(el('p', 'muted', `${vm.imageProgress.message} (${Math.round(vm.imageProgress.fraction * 100)}%)`));
  if (vm.state === 'failed' && vm.detail) vmNote.append(el('p', 'error', vm.detail));
}

function renderPlan(): void {
  plan.hidden = state.view.plan.length === 0;
  plan.replaceChildren(...state.view.plan.map((p) => el('li', `plan-${p.status}`, `${p.status === 'completed' ? '✓' : p.status === 'in_progress' ? '▶' : '○'} ${p.content}`)));
}

function renderBlocked(task: TaskSummary): void {
  blocked.hidden = state.blocked.length === 0;
  const shown = state.blocked.slice(-10);
  const more = state.blockedTotal - shown.reduce((n, r) => n + r.count, 0);
  const rows: HTMLElement[] = [el('div', 'muted', `Blocked network requests${more > 0 ? ` (latest ${shown.length}; ${more.toLocaleString()} more in Cowork: Show Egress Log)` : ''}:`)];
  const offered = new Set<string>();
  for (const r of shown) {
    const row = el('div', 'row blocked-item');
    row.dataset.host = r.host;
    row.append(el('span', 'blocked-dest', `${r.host}:${r.port}${r.count > 1 ? ` ×${r.count}` : ''}${r.reason ? ` — ${r.reason}` : ''}`));
    const key = `${r.host}:${r.port}`;
    if (!r.canAllow) {
      const why = el('span', 'muted cannot-allow', `Can't be allowed here: ${r.why ?? 'never reachable from the task'}`);
      row.append(why);
    } else if (!offered.has(key)) {
      offered.add(key);
      row.append(button('Allow for this task', { secondary: true, onClick: () => send({ type: 'allowDomain', taskId: task.id, host: r.host, port: r.port }) }));
    }
    rows.push(row);
  }
  blocked.replaceChildren(...rows);
}

function changeActions(taskId: string): ChangeActions {
  return {
    openDiff: (path) => send({ type: 'openDiff', taskId, path }),
    accept: (path, sha256, fingerprint) => send({ type: 'acceptFile', taskId, path, sha256, fingerprint }),
    discard: (path) => send({ type: 'discardFile', taskId, path }),
    acceptAll: () => send({ type: 'acceptAll', taskId }),
    discardAll: () => send({ type: 'discardAll', taskId }),
    acceptFolder: (folder) => send({ type: 'acceptFolder', taskId, folder }),
    discardFolder: (folder) => send({ type: 'discardFolder', taskId, folder }),
  };
}

function renderVm(): void {
  vmLabel.className = `vm-state state-${state.vm.state}`;
  vmLabel.textContent = `Smoke-test VM: ${STATE_LABEL[state.vm.state]}`;
  vmLabel.title = 'A VM of its own for trying commands (Start Smoke-Test VM); it is not any task\'s VM. Each task runs in a VM of its own.';
  const running = state.vm.state === 'ready' || state.vm.state === 'booting';
  vmButtons.replaceChildren(
    running
      ? withTitle(button('Stop Smoke-Test VM', { icon: 'debug-stop', secondary: true, id: 'stop-vm', onClick: () => send({ type: 'stopVm' }) }), 'Stops this VM and the warm VM kept ready for the next task (cowork.vm.warm); tasks\' VMs keep running.')
      : button('Start Smoke-Test VM', { icon: 'vm', id: 'start-vm', onClick: () => send({ type: 'startVm' }) }),
  );
  commandOutput.hidden = !state.lastCommand;
  if (state.lastCommand) commandOutput.textContent = `$ ${state.lastCommand.command}\n${state.lastCommand.output}[${state.lastCommand.exit}]`;
}

function isRunning(task: TaskSummary): boolean {
  return task.state === 'running' || task.state === 'booting' || task.state === 'queued';
}

function render(): void {
  vscode.setState({ selected: state.selected });
  const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  notices.replaceChildren();
  if (state.scripted) notices.append(el('p', 'notice', 'Scripted demo: answers come from a local script, not from a model.'));
  if (!state.trusted) notices.append(el('p', 'notice', 'Cowork runs nothing in an untrusted workspace. Trust this folder to delegate tasks.'));
  if (state.settingsProblem) notices.append(el('p', 'error', `Settings problem: ${state.settingsProblem}`));
  for (const [i, message] of state.transient.entries()) {
    const p = el('p', 'notice transient', message);
    p.append(iconButton('close', 'Dismiss', () => {
      state.transient.splice(i, 1);
      scheduleRender();
    }));
    notices.append(p);
  }
  modelPicker.setOptions(state.models);
  modelPicker.hidden = state.models.length < 2;
  for (const e of [newTask, taskList, taskView, vmBox, ...dividers]) e.hidden = !state.trusted;
  if (!state.trusted) return;
  // the editor tab is one task's view: no task list, prompt or smoke-test VM
  if (editorMode) for (const e of [newTask, taskList, vmBox, ...dividers]) e.hidden = true;
  renderTaskList();
  const task = state.tasks.find((t) => t.id === state.selected);
  taskView.hidden = !task;
  if (!editorMode) dividers[0]!.hidden = !task;
  if (task) {
    taskView.setAttribute('aria-label', `Task ${task.title}`);
    renderStrip(task);
    renderPlan();
    renderBlocked(task);
    changes.render(task.id, state.changes, changeActions(task.id));
    transcript.render(state.view.items);
    followBox.hidden = isRunning(task);
  }
  if (!editorMode) renderVm();
  if (nearBottom && task && isRunning(task)) window.scrollTo(0, document.body.scrollHeight);
}

let scheduled = false;
function scheduleRender(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    render();
  });
}

window.addEventListener('message', (event: MessageEvent) => {
  const parsed = HostToWebview.safeParse(event.data);
  if (!parsed.success) {
    send({ type: 'invalidMessage', error: `${String((event.data as { type?: unknown } | null)?.type)}: ${parsed.error.message}`.slice(0, 2000) });
    return;
  }
  const msg = parsed.data;
  switch (msg.type) {
    case 'state':
      Object.assign(state, { vm: msg.vm, trusted: msg.trusted, settingsProblem: msg.settingsProblem, scripted: msg.scripted, models: msg.models });
      break;
    case 'commandResult':
      state.lastCommand = { command: msg.command, output: msg.output, exit: msg.exit };
      break;
    case 'tasks':
      state.tasks = msg.tasks;
      state.history = msg.history;
      if (msg.selected !== null) state.selected = msg.selected;
      break;
    case 'transcript':
      if (msg.taskId !== state.selected) {
        state.selected = msg.taskId;
        state.changes = [];
        state.usage = null;
      }
      // the whole task as the host knows it: nothing of the previous view is kept
      state.view = emptyView();
      state.blocked = msg.blocked;
      state.blockedTotal = msg.blockedTotal;
      state.taskVm = msg.vm;
      transcript.reset();
      for (const e of msg.events) applyEvent(state.view, e);
      for (const t of msg.live?.tools ?? []) applyToolSnapshot(state.view, t);
      if (msg.live?.text) applyTextDelta(state.view, msg.live.text);
      break;
    case 'taskVm':
      if (msg.taskId === state.selected) state.taskVm = msg.vm;
      break;
    case 'vmUsage':
      if (msg.taskId === state.selected) state.usage = msg.usage;
      break;
    case 'changes':
      if (msg.taskId === state.selected) state.changes = msg.files;
      break;
    case 'blocked':
      if (msg.taskId === state.selected) {
        state.blocked = msg.items;
        state.blockedTotal = msg.total;
      }
      break;
    case 'fileMatches':
      promptExtras.onMatches(msg.requestId, msg.paths);
      followExtras.onMatches(msg.requestId, msg.paths);
      return;
    case 'insertPrompt':
      promptExtras.insert(msg.text);
      return;
    case 'notice':
      notify(msg.message);
      return;
    case 'live': {
      if (msg.taskId !== state.selected) return;
      const e = msg.event;
      if (e.type === 'text_delta') applyTextDelta(state.view, e.text);
      else if (e.type === 'tool_start') applyToolStart(state.view, e.id, e.name, e.input);
      else if (e.type === 'tool_output') applyToolOutput(state.view, e.id, e.chunk, e.stream);
      else if (e.type === 'transcript') applyEvent(state.view, e.event);
      break;
    }
  }
  scheduleRender();
});

render();
send({ type: 'ready' });
if (state.selected) send({ type: 'selectTask', taskId: state.selected });

function withTitle(el: HTMLElement, title: string): HTMLElement {
  el.title = title;
  return el;
}
