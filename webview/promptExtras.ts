// What a prompt box carries besides its words: images pasted into it (sent to the model as image
// blocks) and @mentions of workspace files, completed from the host's file search. One instance per
// box (the new-task prompt and the follow-up box). The host checks everything again; the limits here
// only say early, in words, what the host and the API would refuse.
import { IMAGE_LIMITS, IMAGE_MEDIA_TYPES, type PromptImage } from '../extension/protocol/transcript';
import type { WebviewToHost } from '../extension/protocol/webview';
import { iconButton } from './ui';
import { bytes, el } from './view/dom';

type Box = HTMLElement & { value: string };

/** the text area's own <textarea> (inside the toolkit's shadow root): where the caret is */
function control(box: Box): HTMLTextAreaElement | undefined {
  return box.shadowRoot?.querySelector('textarea') ?? undefined;
}

let nextRequest = 1;

export class PromptExtras {
  /** the chips of pasted images and the list of @mention completions, shown under the box */
  readonly root = el('div', 'prompt-extras');
  private readonly chips = el('div', 'row image-chips');
  private readonly matches = el('ul', 'mention-matches');
  private pasted: PromptImage[] = [];
  private request = 0;
  private paths: string[] = [];
  private active = 0;

  constructor(
    private readonly box: Box,
    private readonly send: (msg: WebviewToHost) => void,
    private readonly notice: (message: string) => void,
  ) {
    this.matches.setAttribute('role', 'listbox');
    this.matches.setAttribute('aria-label', 'Workspace files');
    this.matches.hidden = true;
    this.chips.hidden = true;
    this.root.append(this.chips, this.matches);
    box.addEventListener('paste', (e) => this.onPaste(e));
    box.addEventListener('input', () => this.onInput());
    // before the box's other key handlers (history, Ctrl+Enter): the list, while open, owns the keys
    box.addEventListener('keydown', (e) => this.onKey(e), { capture: true });
  }

  get images(): PromptImage[] {
    return [...this.pasted];
  }

  /** after a send: the images went with it */
  clear(): void {
    this.pasted = [];
    this.closeMatches();
    this.renderChips();
  }

  /** inserts text (the @ button's mention of the active editor) where the caret is, with a space before it if needed */
  insert(text: string): void {
    const c = control(this.box);
    const at = c?.selectionStart ?? this.box.value.length;
    const before = this.box.value.slice(0, at);
    const sep = before === '' || /\s$/.test(before) ? '' : ' ';
    this.box.value = before + sep + text + this.box.value.slice(at);
    this.box.focus();
  }

  /** the host's answer to findFiles; stale answers (the person typed on) are dropped */
  onMatches(requestId: number, paths: string[]): void {
    if (requestId !== this.request || this.query() === undefined) return;
    this.paths = paths;
    this.active = 0;
    this.renderMatches();
  }

  private onPaste(e: ClipboardEvent): void {
    const items: DataTransferItem[] = e.clipboardData ? Array.from({ length: e.clipboardData.items.length }, (_, i) => e.clipboardData!.items[i]!) : [];
    const files = items.filter((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (files.length === 0) return; // text: the box pastes it as usual
    e.preventDefault();
    for (const item of files) {
      const type = item.type as (typeof IMAGE_MEDIA_TYPES)[number];
      const file = item.getAsFile();
      if (!file) continue;
      if (!IMAGE_MEDIA_TYPES.includes(type)) {
        this.notice(`Only PNG, JPEG, GIF and WebP images can be sent to the model; this one is ${item.type}.`);
        continue;
      }
      if (file.size > IMAGE_LIMITS.decodedBytes) {
        this.notice(`This image is ${bytes(file.size)}; the model takes at most ${IMAGE_LIMITS.decodedBytes / 1_000_000} MB per image. Make it smaller and paste it again.`);
        continue;
      }
      if (this.pasted.length >= IMAGE_LIMITS.count) {
        this.notice(`At most ${IMAGE_LIMITS.count} images go with one message.`);
        break;
      }
      const reader = new FileReader();
      reader.onload = () => {
        const data = (typeof reader.result === 'string' ? reader.result : '').replace(/^data:[^,]*,/, '');
        if (this.pasted.length >= IMAGE_LIMITS.count) return;
        this.pasted.push({ mediaType: type, data });
        this.renderChips();
      };
      reader.onerror = () => this.notice(`The pasted image could not be read: ${reader.error?.message ?? 'unknown error'}.`);
      reader.readAsDataURL(file);
    }
  }

  private renderChips(): void {
    this.chips.hidden = this.pasted.length === 0;
    this.chips.replaceChildren(
      ...this.pasted.map((img, i) => {
        const chip = el('span', 'image-chip');
        const thumb = el('img', 'thumb');
        thumb.src = `data:${img.mediaType};base64,${img.data}`;
        thumb.alt = `Pasted image ${i + 1}`;
        const size = Math.floor((img.data.length * 3) / 4);
        chip.append(thumb, el('span', 'muted', bytes(size)), iconButton('close', `Remove pasted image ${i + 1}`, () => this.remove(i)));
        return chip;
      }),
    );
  }

  private remove(i: number): void {
    this.pasted.splice(i, 1);
    this.renderChips();
  }

  /** what follows an @ right before the caret, or undefined when the caret is not in a mention */
  private query(): string | undefined {
    const c = control(this.box);
    const upTo = this.box.value.slice(0, c?.selectionStart ?? this.box.value.length);
    const m = /(?:^|\s)@([\w./-]*)$/.exec(upTo);
    return m ? m[1] : undefined;
  }

  private onInput(): void {
    const q = this.query();
    if (q === undefined) return this.closeMatches();
    this.request = nextRequest++;
    this.send({ type: 'findFiles', requestId: this.request, query: q.slice(0, 200) });
  }

  private onKey(e: KeyboardEvent): void {
    if (this.matches.hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      this.active = (this.active + (e.key === 'ArrowDown' ? 1 : this.paths.length - 1)) % this.paths.length;
      this.renderMatches();
    } else if ((e.key === 'Enter' && !e.ctrlKey && !e.metaKey) || e.key === 'Tab') {
      this.choose(this.paths[this.active]!);
    } else if (e.key === 'Escape') {
      this.closeMatches();
    } else return;
    e.preventDefault();
    e.stopImmediatePropagation();
  }

  private choose(p: string): void {
    const c = control(this.box);
    const at = c?.selectionStart ?? this.box.value.length;
    const before = this.box.value.slice(0, at).replace(/@[\w./-]*$/, '');
    this.box.value = `${before}@${p} ${this.box.value.slice(at)}`;
    this.closeMatches();
    this.box.focus();
  }

  private closeMatches(): void {
    this.request = 0;
    this.paths = [];
    this.matches.hidden = true;
    this.matches.replaceChildren();
  }

  private renderMatches(): void {
    this.matches.hidden = this.paths.length === 0;
    this.matches.replaceChildren(
      ...this.paths.map((p, i) => {
        const li = el('li', `mention-match ${i === this.active ? 'active' : ''}`, p);
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', String(i === this.active));
        // mousedown, not click: the box must not lose the caret first
        li.addEventListener('mousedown', (e) => {
          e.preventDefault();
          this.choose(p);
        });
        return li;
      }),
    );
  }
}
