// The only module that knows which web-component library draws the panel. @vscode/webview-ui-toolkit
// was asked for by the product's author; it is deprecated upstream (Jan 2025), so everything else
// in the webview calls these helpers, and moving to @vscode-elements/elements is a change here only.
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeDivider, vsCodeProgressRing, vsCodeTextArea, vsCodeTextField } from '@vscode/webview-ui-toolkit';

let registered = false;
export function registerComponents(): void {
  if (registered) return;
  provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeTextArea(), vsCodeTextField(), vsCodeProgressRing(), vsCodeDivider());
  registered = true;
}

export function button(label: string, opts: { icon?: string; secondary?: boolean; id?: string; onClick: () => void; disabled?: boolean }): HTMLElement {
  const b = document.createElement('vscode-button');
  if (opts.secondary) b.setAttribute('appearance', 'secondary');
  if (opts.id) b.id = opts.id;
  if (opts.disabled) b.setAttribute('disabled', '');
  if (opts.icon) {
    const i = document.createElement('span');
    i.className = `codicon codicon-${opts.icon}`;
    i.slot = 'start';
    b.appendChild(i);
  }
  b.appendChild(document.createTextNode(label));
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) opts.onClick();
  });
  return b;
}

/** A toolbar-style button showing only a codicon; `label` is its accessible name and tooltip. */
export function iconButton(icon: string, label: string, onClick: () => void): HTMLElement {
  const b = document.createElement('vscode-button');
  b.setAttribute('appearance', 'icon');
  b.setAttribute('aria-label', label);
  b.title = label;
  const i = document.createElement('span');
  i.className = `codicon codicon-${icon}`;
  b.appendChild(i);
  b.addEventListener('click', onClick);
  return b;
}

export function textArea(opts: { placeholder: string; id?: string; rows?: number }): HTMLElement & { value: string } {
  const t = document.createElement('vscode-text-area') as HTMLElement & { value: string };
  t.setAttribute('placeholder', opts.placeholder);
  t.setAttribute('resize', 'vertical');
  t.setAttribute('rows', String(opts.rows ?? 3));
  if (opts.id) t.id = opts.id;
  return t;
}

export function textField(opts: { placeholder: string; id?: string }): HTMLElement & { value: string } {
  const t = document.createElement('vscode-text-field') as HTMLElement & { value: string };
  t.setAttribute('placeholder', opts.placeholder);
  if (opts.id) t.id = opts.id;
  return t;
}

export function progressRing(): HTMLElement {
  return document.createElement('vscode-progress-ring');
}

/**
 * A small label. Not the toolkit's vscode-tag: its template binds a `style` attribute, which the
 * panel's CSP (no inline styles) refuses with a console error; this looks the same (media/panel.css).
 */
export function tag(text: string): HTMLElement {
  const t = document.createElement('span');
  t.className = 'tag';
  t.textContent = text;
  return t;
}

export function divider(): HTMLElement {
  return document.createElement('vscode-divider');
}

/**
 * A native <select> drawn with the theme's dropdown colours (media/panel.css). Not the toolkit's
 * vscode-dropdown: its listbox positions itself with inline styles, which the panel's CSP refuses.
 */
export function select(opts: { id: string; label: string }): HTMLSelectElement & { setOptions(values: readonly string[]): void } {
  const s = document.createElement('select') as HTMLSelectElement & { setOptions(values: readonly string[]): void };
  s.id = opts.id;
  s.className = 'native-select';
  s.setAttribute('aria-label', opts.label);
  s.title = opts.label;
  s.setOptions = (values) => {
    const current = s.value;
    if (Array.from({ length: s.options.length }, (_, i) => s.options[i]!.value).join('\n') === values.join('\n')) return;
    s.replaceChildren(
      ...values.map((v) => {
        const o = document.createElement('option');
        o.value = v;
        o.textContent = v;
        return o;
      }),
    );
    // keep the person's pick while it is still offered; otherwise the first (the default)
    s.value = values.includes(current) ? current : (values[0] ?? '');
  };
  return s;
}
