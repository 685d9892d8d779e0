// The selected task's changes in the panel: per file, collapsible, a unified diff with syntax
// colour (or a note for binary, large or link changes), and the file's actions. Rebuilt only when
// the host sends new changes, so scrolling and open diffs survive streaming transcript updates.
import type { ChangeView } from '../../extension/protocol/webview';
import { generatedFolder } from '../../extension/panel/generated';
import { button, iconButton } from '../ui';
import { el, inert } from './dom';
import { highlight, languageForFile } from './highlight';

export interface ChangeActions {
  openDiff(path: string): void;
  /** `sha256`: the version the row showed (the host refuses to write any other) */
  accept(path: string, sha256?: string, fingerprint?: string): void;
  /** discard a proposed change, or (direct mode) revert an applied one */
  discard(path: string): void;
  acceptAll(): void;
  discardAll(): void;
  /** a generated folder's files (node_modules, .venv), all at once */
  acceptFolder(folder: string): void;
  discardFolder(folder: string): void;
}

/** How many file names a generated folder's row lists when opened. */
const GENERATED_LISTED = 50;

function diffBody(file: ChangeView): HTMLElement {
  const pre = el('pre', 'diff');
  const lang = languageForFile(file.display);
  for (const line of file.lines) {
    const kind = line.startsWith('@@') ? 'hunk' : line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : 'ctx';
    const row = el('span', `diff-line ${kind}`);
    if (kind === 'hunk') row.textContent = line;
    else {
      row.append(el('span', 'sign', line[0] ?? ' '));
      const code = el('span', 'code');
      const coloured = highlight(line.slice(1), lang);
      if (coloured === undefined) code.textContent = line.slice(1);
      else code.innerHTML = coloured; // escaped by highlight.js
      row.append(code);
    }
    pre.append(row, document.createTextNode('\n'));
  }
  if (file.truncated) pre.append(el('span', 'muted', '… (more in the diff editor)'));
  return pre;
}

export class ChangesView {
  readonly root = el('details', 'changes');
  /** diffs the person opened or closed by hand (by path) */
  private readonly open = new Map<string, boolean>();
  private shown: { taskId: string; files: readonly ChangeView[] } | undefined;

  constructor() {
    this.root.open = true;
  }

  render(taskId: string, files: readonly ChangeView[], act: ChangeActions): void {
    // the host sends a new array when the changes change: compare by reference, not content
    if (this.shown?.taskId === taskId && this.shown.files === files) return;
    this.shown = { taskId, files };
    this.root.hidden = files.length === 0;
    const sum = el('summary');
    const pending = files.filter((f) => !f.applied).length;
    const applied = files.length - pending;
    sum.append(el('span', 'section-title', applied ? `Changed in your folder (${applied})${pending ? ` · not applied (${pending})` : ''}` : `Changes (${files.length})`));
    const refused = files.filter((f) => !f.applied && f.refusal);
    // files in generated folders: one row per folder, outside Accept All
    const groups = new Map<string, ChangeView[]>();
    const single: ChangeView[] = [];
    for (const f of files) {
      const g = f.applied ? undefined : generatedFolder(f.display);
      if (g === undefined) single.push(f);
      else groups.set(g, [...(groups.get(g) ?? []), f]);
    }
    const generatedCount = [...groups.values()].reduce((n, g) => n + g.filter((f) => !f.refusal).length, 0);
    if (pending) {
      const acceptable = pending - refused.length - generatedCount;
      sum.append(
        inert(
          button(refused.length || generatedCount ? `Accept ${acceptable}` : 'Accept All', { icon: 'check-all', id: 'accept-all', disabled: acceptable === 0, onClick: () => act.acceptAll() }),
          button('Discard All', { icon: 'discard', secondary: true, id: 'discard-all', onClick: () => act.discardAll() }),
        ),
      );
    }
    if (refused.length) {
      // Accept All leaves these out (the host does too): say how many, and take the person to why
      const why = el('button', 'link not-included', `${refused.length} not included: see why`);
      why.id = 'not-included';
      why.addEventListener('click', (e) => {
        e.preventDefault();
        const first = this.root.querySelector<HTMLDetailsElement>('details.file-diff.refused');
        if (first) {
          first.open = true;
          first.scrollIntoView({ block: 'center' });
          first.querySelector<HTMLElement>('summary')?.focus();
        }
      });
      sum.append(why);
    }
    const few = single.length <= 3 && groups.size === 0 && single.reduce((n, f) => n + f.lines.length, 0) <= 80;
    this.root.replaceChildren(sum, ...[...groups].map(([folder, inside]) => this.folder(folder, inside, act)), ...single.map((file) => this.file(file, few, act)));
  }

  private folder(folder: string, inside: readonly ChangeView[], act: ChangeActions): HTMLElement {
    const det = el('details', 'file-diff generated');
    det.dataset.folder = folder;
    const head = el('summary');
    head.append(el('span', 'codicon codicon-package'), el('span', 'file-name', `${folder}/`), el('span', 'badge generated-count', `generated: ${inside.length.toLocaleString('en-US')} file${inside.length === 1 ? '' : 's'}`));
    head.append(
      inert(
        iconButton('check', `Accept the ${inside.length.toLocaleString('en-US')} files in ${folder}`, () => act.acceptFolder(folder)),
        iconButton('discard', `Discard the ${inside.length.toLocaleString('en-US')} files in ${folder}`, () => act.discardFolder(folder)),
      ),
    );
    head.append(el('span', 'row-reason muted', 'Created by a tool in the task; not part of Accept All. Accept the folder to copy it to your folder.'));
    const list = el('ul', 'generated-list');
    for (const f of inside.slice(0, GENERATED_LISTED)) list.append(el('li', f.refusal ? 'refusal-reason' : '', f.refusal ? `${f.display} — Accept will refuse this: ${f.refusal}` : f.display));
    if (inside.length > GENERATED_LISTED) list.append(el('li', 'muted', `… and ${(inside.length - GENERATED_LISTED).toLocaleString('en-US')} more`));
    det.append(head, list);
    det.open = this.open.get(`folder:${folder}`) ?? false;
    det.addEventListener('toggle', () => this.open.set(`folder:${folder}`, det.open));
    return det;
  }

  private file(file: ChangeView, few: boolean, act: ChangeActions): HTMLElement {
    const det = el('details', `file-diff kind-${file.kind}${file.conflicted ? ' conflicted' : ''}${file.risk ? ' runs-on-host' : ''}${file.refusal && !file.applied ? ' refused' : ''}`);
    det.dataset.path = file.display;
    const head = el('summary');
    const icon = file.refusal ? 'error' : file.risk || file.conflicted ? 'warning' : file.kind === 'added' ? 'diff-added' : file.kind === 'deleted' ? 'diff-removed' : 'diff-modified';
    head.append(el('span', `codicon codicon-${icon}`), el('span', 'file-name', file.display));
    if (file.added || file.removed) head.append(el('span', 'added', `+${file.added}`), el('span', 'removed', `−${file.removed}`));
    if (file.label) head.append(el('span', 'badge label', file.label));
    if (file.conflicted) head.append(el('span', 'badge conflict', 'conflict'));
    if (file.risk) {
      const badge = el('span', 'badge runs-on-host', 'runs on your machine');
      badge.title = `${file.risk}. Accepting it asks you to confirm by name.`;
      head.append(badge);
    }
    if (file.refusal) {
      const badge = el('span', 'badge refused', 'will be refused');
      badge.title = file.refusal;
      head.append(badge);
    }
    const openDiff = iconButton('diff', `Open Diff: ${file.display}`, () => act.openDiff(file.path));
    head.append(
      file.applied
        ? // direct mode: already in the folder; Revert puts the person's version back
          inert(openDiff, iconButton('discard', `Revert ${file.display} to your version`, () => act.discard(file.path)))
        : file.refusal
          ? // Accept would refuse it: no Accept button, the reason is on the row
            inert(openDiff, iconButton('discard', `Discard ${file.display}`, () => act.discard(file.path)))
          : inert(openDiff, iconButton('check', `Accept ${file.display}`, () => act.accept(file.path, file.sha256, file.fingerprint)), iconButton('discard', `Discard ${file.display}`, () => act.discard(file.path))),
    );
    // why Accept refuses it (and where a link points), on the row itself: visible without opening it
    if (file.refusal && !file.applied) head.append(el('span', 'row-reason refusal-reason', `Accept will refuse this: ${file.refusal}${file.kind === 'symlink' && file.note ? ` (${file.note})` : ''}`));
    else if (file.risk) head.append(el('span', 'row-reason risk-reason', `Runs on your machine: ${file.risk}. Accept asks you to confirm it by name.`));
    det.append(head, file.note ? el('p', 'muted note', file.note) : diffBody(file));
    det.open = this.open.get(file.path) ?? (few && !file.note);
    det.addEventListener('toggle', () => this.open.set(file.path, det.open));
    return det;
  }
}
