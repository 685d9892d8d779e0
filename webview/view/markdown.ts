// Assistant text as Markdown, safely: raw HTML in the model's text is shown as text (html: false),
// code blocks are syntax coloured, links are limited to http(s) and mailto and open outside the webview, images are not loaded.
import MarkdownIt from 'markdown-it';
import { highlight } from './highlight';

// Code blocks are coloured with highlight.js; its output is escaped HTML made of <span class="hljs-…">.
const md = new MarkdownIt({ html: false, linkify: true, breaks: false, highlight: (code, lang) => highlight(code, lang.trim().toLowerCase() || undefined) ?? '' });
const SAFE_LINK = /^(https?:|mailto:)/i;
md.validateLink = (url: string): boolean => SAFE_LINK.test(url.trim());
md.renderer.rules.image = (tokens, idx) => md.utils.escapeHtml(`[image: ${tokens[idx]?.content ?? ''}]`);
const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx]?.attrSet('rel', 'noopener noreferrer');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

/** HTML for the model's Markdown; safe to assign to innerHTML (no raw HTML, no script URLs). */
export function renderMarkdown(text: string): string {
  return md.render(text);
}
