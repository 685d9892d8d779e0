// The transcript in the page, keyed by item: an item is rendered again only when what can still
// change about it (its signature) changed, and only the latest `window` items are in the page
// ("Show earlier" adds more), so a 5,000-event task opens quickly and streams at frame rate.
import { progressRing } from '../ui';
import { el } from './dom';
import { renderMarkdown } from './markdown';
import { describeTool, type Item } from './transcriptModel';

/** How many transcript items are in the page at once; "Show earlier" adds as many again. */
const WINDOW = 200;

/** What about an item can still change; an item is re-rendered only when this does. */
function signature(item: Item): string {
  switch (item.kind) {
    case 'assistant':
      return `${item.live ? 'live' : 'done'}:${item.text.length}`;
    case 'tool':
      return `${item.card.running}:${item.card.live?.seen ?? item.card.output.length}:${item.card.result ? 'r' : ''}`;
    case 'user':
    case 'error':
    case 'stopped':
      return '';
  }
}

export class TranscriptView {
  readonly earlier = el('button', 'link earlier');
  readonly list = el('div', 'transcript');
  private windowSize = WINDOW;
  private readonly rendered = new WeakMap<Item, { el: HTMLElement; sig: string }>();
  /** tool cards the person opened or closed by hand (by tool id) */
  private readonly toggled = new Map<string, boolean>();

  constructor(onShowEarlier: () => void) {
    this.list.id = 'transcript';
    this.list.setAttribute('aria-live', 'polite');
    this.earlier.addEventListener('click', () => {
      this.windowSize += WINDOW;
      onShowEarlier();
    });
  }

  /** A new task (or the same one loaded again): back to the latest items. */
  reset(): void {
    this.windowSize = WINDOW;
  }

  render(items: readonly Item[]): void {
    const start = Math.max(0, items.length - this.windowSize);
    this.earlier.hidden = start === 0;
    this.earlier.textContent = `Show ${Math.min(start, WINDOW)} earlier of ${start} hidden events`;
    const wanted: HTMLElement[] = [];
    for (let i = start; i < items.length; i++) {
      const item = items[i]!;
      const sig = signature(item);
      let r = this.rendered.get(item);
      if (!r || r.sig !== sig) {
        const fresh = this.renderItem(item);
        r?.el.replaceWith(fresh);
        r = { el: fresh, sig };
        this.rendered.set(item, r);
      }
      wanted.push(r.el);
    }
    const kids = this.list.children;
    if (kids.length !== wanted.length || wanted.some((w, i) => kids[i] !== w)) this.list.replaceChildren(...wanted);
  }

  private renderItem(item: Item): HTMLElement {
    switch (item.kind) {
      case 'user':
        return el('div', 'msg user', item.text);
      case 'assistant': {
        const d = el('div', 'md msg assistant');
        d.innerHTML = renderMarkdown(item.text); // no raw HTML, only http(s)/mailto links (./markdown)
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
        // running cards are open; finished ones closed, unless the person chose otherwise
        det.open = this.toggled.get(c.id) ?? c.running;
        det.addEventListener('toggle', () => {
          if (det.open !== (this.toggled.get(c.id) ?? c.running)) this.toggled.set(c.id, det.open);
        });
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
}
