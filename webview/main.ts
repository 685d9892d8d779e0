// The Cowork side panel. Plain DOM, state from the host only; components come from ./ui.
import { HostToWebview, type VmStatusView, type WebviewToHost } from '../extension/protocol/webview';
import { button, divider, progressRing, registerComponents, tag, textArea, textField } from './ui';

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();
const send = (msg: WebviewToHost): void => vscode.postMessage(msg);

registerComponents();
const app = document.getElementById('app')!;

interface ViewState {
  vm: VmStatusView;
  trusted: boolean;
  settingsProblem: string | null;
  lastCommand?: { command: string; output: string; exit: string };
}
let state: ViewState = (vscode.getState() as ViewState | undefined) ?? { vm: { state: 'stopped' }, trusted: true, settingsProblem: null };

const STATE_LABEL: Record<VmStatusView['state'], string> = {
  stopped: 'VM stopped',
  booting: 'VM booting…',
  ready: 'VM ready',
  stopping: 'VM stopping…',
  failed: 'VM failed',
};

function el<K extends keyof HTMLElementTagNameMap>(tagName: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tagName);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render(): void {
  vscode.setState(state);
  app.replaceChildren();
  if (!state.trusted) {
    app.append(el('p', 'notice', 'Cowork runs nothing in an untrusted workspace. Trust this folder to start the VM.'));
    return;
  }
  if (state.settingsProblem) app.append(el('p', 'error', `Settings problem: ${state.settingsProblem}`));

  const task = el('section', 'task');
  const prompt = textArea({ placeholder: 'Describe a task for Claude…', id: 'prompt' });
  task.append(prompt, button('Delegate', { icon: 'send', id: 'delegate', onClick: () => send({ type: 'delegate', prompt: prompt.value }) }));
  app.append(task, divider());

  const vm = el('section', 'vm');
  vm.setAttribute('aria-label', 'Virtual machine');
  const head = el('div', 'row');
  const label = el('span', `vm-state state-${state.vm.state}`, STATE_LABEL[state.vm.state]);
  label.id = 'vm-state';
  head.append(label);
  if (state.vm.accelerator) head.append(tag(state.vm.accelerator));
  if (state.vm.state === 'booting' || state.vm.state === 'stopping') head.append(progressRing());
  vm.append(head);
  if (state.vm.imageProgress && state.vm.state === 'booting' && state.vm.imageProgress.fraction < 1) {
    vm.append(el('p', 'muted', `${state.vm.imageProgress.message} (${Math.round(state.vm.imageProgress.fraction * 100)}%)`));
  }
  if (state.vm.bootMs && state.vm.state === 'ready') vm.append(el('p', 'muted', `Booted in ${(state.vm.bootMs / 1000).toFixed(1)} s`));
  if (state.vm.detail && state.vm.state === 'failed') vm.append(el('p', 'error', state.vm.detail));
  const actions = el('div', 'row');
  const running = state.vm.state === 'ready' || state.vm.state === 'booting';
  actions.append(
    running
      ? button('Stop VM', { icon: 'debug-stop', secondary: true, id: 'stop-vm', onClick: () => send({ type: 'stopVm' }) })
      : button('Start VM', { icon: 'vm', id: 'start-vm', onClick: () => send({ type: 'startVm' }) }),
  );
  vm.append(actions);

  const cmd = textField({ placeholder: 'Run a command in the VM (e.g. uname -a)', id: 'command' });
  cmd.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && cmd.value.trim()) send({ type: 'runCommand', command: cmd.value.trim() });
  });
  vm.append(cmd);
  if (state.lastCommand) {
    const out = el('pre', 'output', `$ ${state.lastCommand.command}\n${state.lastCommand.output}[${state.lastCommand.exit}]`);
    out.id = 'command-output';
    vm.append(out);
  }
  app.append(vm);
}

window.addEventListener('message', (event: MessageEvent) => {
  const parsed = HostToWebview.safeParse(event.data);
  if (!parsed.success) return;
  const msg = parsed.data;
  switch (msg.type) {
    case 'state':
      state = { ...state, vm: msg.vm, trusted: msg.trusted, settingsProblem: msg.settingsProblem };
      break;
    case 'commandResult':
      state = { ...state, lastCommand: { command: msg.command, output: msg.output, exit: msg.exit } };
      break;
  }
  render();
});

render();
send({ type: 'ready' });
