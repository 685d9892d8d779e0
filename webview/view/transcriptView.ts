// The transcript in the page, keyed by item: an item is rendered again only when what can still
// change about it (its signature) changed, and only the latest `window` items are in the page
// ("Show earlier" adds more), so a 5,000-event task opens quickly and streams at frame rate.
import { progressRing } from '../ui';
import { el } from './dom';
import { renderMarkdown } from './markdown';
import { outputPieces } from '../../extension/panel/liveOutput';
import { describeTool, resultFlags, type Item, type ToolCard } from './transcriptModel';

/** A tool's output as it streamed: stdout and stderr interleaved in arrival order, stderr marked. */
function outputBody(c: ToolCard): HTMLElement | undefined {
  if (c.streamed && c.streamed.seen > 0) {
    const pre = el('pre', 'output streamed');
    for (const p of outputPieces(c.streamed)) {
      if (p.stream === 'stdout') pre.append(document.createTextNode(p.text));
      else {
        const span = el('span', p.stream === 'stderr' ? 'stderr' : 'omitted', p.stream === 'omitted' ? `\n${p.text}\n` : p.text);
        if (p.stream === 'stderr') span.title = 'stderr';
        pre.append(span);
      }
    }
    return pre;
  }
  const body = c.result ? c.result.content : c.output;
  return body ? el('pre', 'output', body) : undefined;
}

/** How many transcript items are in the page at once; "Show earlier" adds as many again. */
const WINDOW = 200;

/** What about an item can still change; an item is re-rendered only when this does. */
function signature(item: Item): string {
  switch (item.kind) {
    case 'assistant':
      return `${item.live ? 'live' : 'done'}:${item.text.length}`;
    case 'tool':
      return `${item.card.running}:${item.card.streamed?.seen ?? item.card.output.length}:${item.card.streamed?.head.length ?? 0}:${item.card.result ? 'r' : ''}`;
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
      case 'user': {
        const d = el('div', 'msg user', item.text);
        for (const [i, img] of (item.images ?? []).entries()) {
          const thumb = el('img', 'thumb');
          thumb.src = `data:${img.mediaType};base64,${img.data}`;
          thumb.alt = `Image ${i + 1} sent with this message`;
          d.append(el('br'), thumb);
        }
        return d;
      }
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
        if (c.streamed?.head.some((p) => p.stream === 'stderr') || c.streamed?.tail.some((p) => p.stream === 'stderr')) sum.append(el('span', 'badge stderr-badge', 'stderr'));
        if (c.result) {
          const bits: string[] = [];
          if (c.result.exitCode !== undefined && c.result.exitCode !== null) bits.push(`exit ${c.result.exitCode}`);
          if (c.result.durationMs !== undefined) bits.push(`${(c.result.durationMs / 1000).toFixed(1)} s`);
          const flags = resultFlags(c);
          if (c.result.isError && !flags.length && (c.result.exitCode === undefined || c.result.exitCode === null || c.result.exitCode === 0)) bits.push('error');
          if (bits.length) sum.append(el('span', 'muted tool-meta', bits.join(' · ')));
          for (const f of flags) sum.append(el('span', `badge flag flag-${f.replace(/\W+/g, '-')}`, f));
        } else if ((c.streamed?.omitted ?? 0) > 0) sum.append(el('span', 'badge flag flag-truncated', 'truncated'));
        det.append(sum);
        const body = outputBody(c);
        if (body) det.append(body);
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
