import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMarkdown } from '../../webview/view/markdown';

describe('panel Markdown', () => {
  it('renders Markdown with code blocks', () => {
    const html = renderMarkdown('Changed **slugify.py**:\n\n```python\nprint("x")\n```\n');
    assert.match(html, /<strong>slugify.py<\/strong>/);
    // coloured by highlight.js: escaped text in token spans
    assert.match(html, /<pre><code class="language-python"><span class="hljs-built_in">print<\/span>\(<span class="hljs-string">&quot;x&quot;<\/span>\)/);
  });
  it('never lets the model inject HTML or script links', () => {
    const html = renderMarkdown('<img src=x onerror=alert(1)> <script>alert(1)</script> [click](javascript:alert(1)) [ok](https://example.com) ![i](https://evil.example/t.png)');
    assert.doesNotMatch(html, /<img|<script|href="javascript/i);
    assert.match(html, /&lt;script&gt;/);
    assert.match(html, /<a href="https:\/\/example.com" rel="noopener noreferrer">ok<\/a>/);
    assert.match(html, /\[image: i\]/);
  });
});
