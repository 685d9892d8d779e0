// The Cowork side panel: the task list, the selected task's streaming transcript, its VM and its
// blocked network requests. Plain DOM; components come from ./ui; state comes from the host only.
import { HostToWebview, type TaskSummary, type VmStatusView, type WebviewToHost } from '../extension/protocol/webview';
import { button, divider, progressRing, registerComponents, tag, textArea, textField } from './ui';
import { renderMarkdown } from './view/markdown';
import { applyEvent, applyTextDelta, applyToolOutput, applyToolStart, describeTool, emptyView, type Item, type TaskView } from './view/transcriptModel';

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();
const send = (msg: WebviewToHost): void => vscode.postMessage(msg);

registerComponents();
const app = document.getElementById('app')!;

interface PanelState {
  vm: VmStatusView;
  trusted: boolean;
  settingsProblem: string | null;
  scripted: boolean;
  tasks: TaskSummary[];
  selected: string | null;
  view: TaskView;
  taskVm: VmStatusView | null;
  blocked: { host: string; port: number; reason?: string }[];
  lastCommand?: { command: string; output: string; exit: string };
}
const saved = vscode.getState() as { selected?: string | null } | undefined;
const state: PanelState = { vm: { state: 'stopped' }, trusted: true, settingsProblem: null, scripted: false, tasks: [], selected: saved?.selected ?? null, view: emptyView(), taskVm: null, blocked: [] };

const STATE_LABEL: Record<VmStatusView['state'], string> = { stopped: 'VM stopped', booting: 'VM booting…', ready: 'VM ready', stopping: 'VM stopping…', failed: 'VM failed' };
const TASK_LABEL: Record<TaskSummary['state'], string> = { queued: 'queued', booting: 'booting VM', running: 'running', idle: 'waiting for review', failed: 'failed', stopped: 'stopped' };

function el<K extends keyof HTMLElementTagNameMap>(tagName: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tagName);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function age(ms: number): string {
  const s = Math.round((Date.now() - ms) / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

/** The model's Markdown (rendered without raw HTML and with only http(s)/mailto links). */
function richText(text: string): HTMLElement {
  const box = el('div', 'md');
  box.innerHTML = renderMarkdown(text);
  return box;
}

function renderItem(item: Item): HTMLElement {
  switch (item.kind) {
    case 'user':
      return el('div', 'msg user', item.text);
    case 'assistant': {
      const d = richText(item.text);
      d.classList.add('msg', 'assistant');
      if (item.live) d.classList.add('live');
      return d;
    }
    case 'tool': {
      const c = item.card;
      const det = el('details', `tool ${c.result?.isError ? 'tool-error' : ''} ${c.running ? 'tool-running' : ''}`);
      det.dataset.tool = c.name;
      const sum = el('summary');
      sum.append(el('span', `codicon codicon-${c.name === 'bash' ? 'terminal' : c.name === 'update_plan' ? 'checklist' : 'edit'}`), el('span', 'tool-title', describeTool(c)));
      if (c.running) sum.append(progressRing());
      if (c.result) {
        const bits: string[] = [];
        if (c.result.exitCode !== undefined && c.result.exitCode !== null) bits.push(`exit ${c.result.exitCode}`);
        if (c.result.durationMs !== undefined) bits.push(`${(c.result.durationMs / 1000).toFixed(1)} s`);
        if (c.result.isError) bits.push('error');
        if (bits.length) sum.append(el('span', 'muted tool-meta', bits.join(' · ')));
      }
      det.append(sum);
      const body = c.result ? c.result.content : c.output;
      if (body) det.append(el('pre', 'output', body));
      if (c.running) det.open = true;
      return det;
    }
    case 'error': {
      const d = el('div', 'msg error-box');
      d.append(el('span', 'codicon codicon-error'), el('span', '', ` ${item.message}`));
      if (item.action) d.append(el('div', 'action', item.action));
      return d;
    }
    case 'stopped':
      return el('div', 'msg stopped', `■ ${item.reason}`);
  }
}

function renderTaskList(): HTMLElement {
  const list = el('ul', 'tasks');
  list.setAttribute('aria-label', 'Tasks');
  for (const t of state.tasks) {
    const li = el('li', `task-item ${t.id === state.selected ? 'selected' : ''}`);
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    li.dataset.taskId = t.id;
    li.append(el('span', 'task-title', t.title), el('span', `badge state-${t.state}`, TASK_LABEL[t.state]), el('span', 'muted', age(t.createdAt)));
    const select = (): void => send({ type: 'selectTask', taskId: t.id });
    li.addEventListener('click', select);
    li.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && select());
    list.append(li);
  }
  return list;
}

function renderSelected(task: TaskSummary): HTMLElement {
  const sec = el('section', 'task-view');
  sec.setAttribute('aria-label', `Task ${task.title}`);
  const strip = el('div', 'row status-strip');
  const vm = state.taskVm ?? { state: 'stopped' as const };
  const vmLabel = el('span', `vm-state state-${vm.state}`, STATE_LABEL[vm.state]);
  vmLabel.id = 'task-vm-state';
  strip.append(vmLabel);
  if (vm.accelerator) strip.append(tag(vm.accelerator));
  const t = state.view.tokens;
  strip.append(el('span', 'muted', `${(t.input + t.cacheWrite + t.cacheRead).toLocaleString()} in · ${t.output.toLocaleString()} out · ~$${state.view.costUsd.toFixed(3)}`));
  const running = task.state === 'running' || task.state === 'booting' || task.state === 'queued';
  if (running) strip.append(button('Stop', { icon: 'debug-stop', secondary: true, id: 'stop-task', onClick: () => send({ type: 'stopTask', taskId: task.id }) }));
  sec.append(strip);
  if (vm.state === 'booting' && vm.imageProgress && vm.imageProgress.fraction < 1) sec.append(el('p', 'muted', `${vm.imageProgress.message} (${Math.round(vm.imageProgress.fraction * 100)}%)`));
  if (vm.state === 'failed' && vm.detail) sec.append(el('p', 'error', vm.detail));

  if (state.view.plan.length) {
    const plan = el('ol', 'plan');
    plan.setAttribute('aria-label', 'Plan');
    for (const p of state.view.plan) plan.append(el('li', `plan-${p.status}`, `${p.status === 'completed' ? '✓' : p.status === 'in_progress' ? '▶' : '○'} ${p.content}`));
    sec.append(plan);
  }
  if (state.blocked.length) {
    const b = el('div', 'blocked');
    b.append(el('div', 'muted', 'Blocked network requests:'));
    const seen = new Set<string>();
    for (const r of state.blocked.slice(-10)) {
      const row = el('div', 'row blocked-item');
      row.append(el('span', '', `${r.host}:${r.port}${r.reason ? ` — ${r.reason}` : ''}`));
      if (!seen.has(r.host) && !/model API/.test(r.reason ?? '')) {
        seen.add(r.host);
        row.append(button('Allow for this task', { secondary: true, onClick: () => send({ type: 'allowDomain', taskId: task.id, host: r.host }) }));
      }
      b.append(row);
    }
    sec.append(b);
  }
  const transcript = el('div', 'transcript');
  transcript.id = 'transcript';
  transcript.setAttribute('aria-live', 'polite');
  for (const item of state.view.items) transcript.append(renderItem(item));
  sec.append(transcript);
  if (!running) {
    const follow = textArea({ placeholder: 'Follow up…', id: 'follow-up', rows: 2 });
    sec.append(follow, button('Send', { icon: 'send', id: 'send-follow-up', onClick: () => follow.value.trim() && send({ type: 'followUp', taskId: task.id, text: follow.value.trim() }) }));
  }
  return sec;
}

function render(): void {
  vscode.setState({ selected: state.selected });
  app.replaceChildren();
  if (state.scripted) app.append(el('p', 'notice', 'Scripted demo: answers come from a local script, not from a model.'));
  if (!state.trusted) {
    app.append(el('p', 'notice', 'Cowork runs nothing in an untrusted workspace. Trust this folder to delegate tasks.'));
    return;
  }
  if (state.settingsProblem) app.append(el('p', 'error', `Settings problem: ${state.settingsProblem}`));
  const newTask = el('section', 'new-task');
  const prompt = textArea({ placeholder: 'Describe a task for Claude…', id: 'prompt' });
  newTask.append(prompt, button('Delegate', { icon: 'send', id: 'delegate', onClick: () => prompt.value.trim() && send({ type: 'delegate', prompt: prompt.value.trim() }) }));
  app.append(newTask);
  if (state.tasks.length) app.append(renderTaskList());
  const selected = state.tasks.find((t) => t.id === state.selected);
  if (selected) app.append(divider(), renderSelected(selected));
  app.append(divider(), renderWorkspaceVm());
}

function renderWorkspaceVm(): HTMLElement {
  const vm = el('details', 'vm');
  const sum = el('summary');
  const label = el('span', `vm-state state-${state.vm.state}`, `Workspace ${STATE_LABEL[state.vm.state]}`);
  label.id = 'vm-state';
  sum.append(label);
  vm.append(sum);
  const running = state.vm.state === 'ready' || state.vm.state === 'booting';
  vm.append(
    running
      ? button('Stop VM', { icon: 'debug-stop', secondary: true, id: 'stop-vm', onClick: () => send({ type: 'stopVm' }) })
      : button('Start VM', { icon: 'vm', id: 'start-vm', onClick: () => send({ type: 'startVm' }) }),
  );
  const cmd = textField({ placeholder: 'Run a command in the sandbox (e.g. uname -a)', id: 'command' });
  cmd.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && cmd.value.trim()) send({ type: 'runCommand', command: cmd.value.trim() });
  });
  vm.append(cmd);
  if (state.lastCommand) vm.append(el('pre', 'output', `$ ${state.lastCommand.command}\n${state.lastCommand.output}[${state.lastCommand.exit}]`));
  return vm;
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
  if (!parsed.success) return;
  const msg = parsed.data;
  switch (msg.type) {
    case 'state':
      Object.assign(state, { vm: msg.vm, trusted: msg.trusted, settingsProblem: msg.settingsProblem, scripted: msg.scripted });
      break;
    case 'commandResult':
      state.lastCommand = { command: msg.command, output: msg.output, exit: msg.exit };
      break;
    case 'tasks':
      state.tasks = msg.tasks;
      if (msg.selected !== null) state.selected = msg.selected;
      break;
    case 'transcript':
      if (msg.taskId !== state.selected) state.selected = msg.taskId;
      state.view = emptyView();
      state.blocked = [];
      state.taskVm = msg.vm;
      for (const e of msg.events) applyEvent(state.view, e);
      break;
    case 'taskVm':
      if (msg.taskId === state.selected) state.taskVm = msg.vm;
      break;
    case 'egress':
      if (msg.taskId === state.selected && !msg.record.allowed) state.blocked.push({ host: msg.record.host, port: msg.record.port, reason: msg.record.reason });
      break;
    case 'live': {
      if (msg.taskId !== state.selected) return;
      const e = msg.event;
      if (e.type === 'text_delta') applyTextDelta(state.view, e.text);
      else if (e.type === 'tool_start') applyToolStart(state.view, e.id, e.name, e.input);
      else if (e.type === 'tool_output') applyToolOutput(state.view, e.id, e.chunk);
      else if (e.type === 'transcript') applyEvent(state.view, e.event);
      break;
    }
  }
  scheduleRender();
});

render();
send({ type: 'ready' });
if (state.selected) send({ type: 'selectTask', taskId: state.selected });
