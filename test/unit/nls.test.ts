// The manifest's user-visible strings live in package.nls.json (l10n-ready): every %key% in
// package.json has a string there, nothing there is unused, and the walkthrough's media exist.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const root = path.resolve(__dirname, '..', '..');
const manifest = readFileSync(path.join(root, 'package.json'), 'utf8');
const nls = JSON.parse(readFileSync(path.join(root, 'package.nls.json'), 'utf8')) as Record<string, string>;

describe('package.nls.json', () => {
  it('has a string for every %key% of package.json, and no unused one', () => {
    const used = new Set([...manifest.matchAll(/"%([^%"]+)%"/g)].map((m) => m[1]!));
    assert.ok(used.size > 20, 'the command titles and the walkthrough are localizable');
    for (const k of used) assert.ok(typeof nls[k] === 'string' && nls[k].length > 0, `${k} has a string`);
    for (const k of Object.keys(nls)) assert.ok(used.has(k), `${k} is used`);
  });

  it('the walkthrough\'s steps have their media, and complete on their commands', () => {
    const pkg = JSON.parse(manifest) as { contributes: { walkthroughs: { steps: { media: { markdown: string }; completionEvents: string[] }[] }[]; commands: { command: string }[] } };
    const commands = new Set(pkg.contributes.commands.map((c) => c.command));
    for (const step of pkg.contributes.walkthroughs[0]!.steps) {
      assert.ok(existsSync(path.join(root, step.media.markdown)), step.media.markdown);
      for (const e of step.completionEvents) assert.ok(commands.has(e.replace(/^onCommand:/, '')), e);
    }
  });
});
