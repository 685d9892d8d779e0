// The manifest and the code agree: every contributed command has a handler and an id, internal
// commands are hidden from the palette, and every setting in package.json is in the schema.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SETTING_KEYS } from '../../extension/config/settings';
import { Commands } from '../../extension/ids';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  engines: { vscode: string };
  contributes: { commands: { command: string }[]; menus: { commandPalette: { command: string; when: string }[] }; configuration: { properties: Record<string, unknown> } };
};
const registration = ['commands/registerCommands.ts', 'review/registerReview.ts'].map((f) => readFileSync(path.join(root, 'extension', f), 'utf8')).join('\n');

describe('package.json', () => {
  it('runs in code-server 4.100.3 (VS Code 1.100)', () => {
    assert.match(pkg.engines.vscode, /^\^1\.(\d+)\./);
    assert.ok(Number(/^\^1\.(\d+)\./.exec(pkg.engines.vscode)![1]) <= 100);
  });

  it('contributes exactly the commands declared in ids.ts, each registered', () => {
    const contributed = pkg.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual(contributed, Object.values(Commands).sort());
    for (const [key, id] of Object.entries(Commands)) {
      assert.ok(registration.includes(`registerCommand(Commands.${key},`), `${id} (Commands.${key}) is not registered`);
    }
  });

  it('hides internal commands from the palette, and shows review commands only where they apply', () => {
    for (const id of Object.values(Commands).filter((c) => c.includes('.internal.'))) {
      assert.ok(pkg.contributes.menus.commandPalette.some((m) => m.command === id && m.when === 'false'), id);
    }
    // review commands act on an SCM resource, or (partial accept) on an open proposed diff
    for (const id of Object.values(Commands).filter((c) => c.startsWith('cowork.review.'))) {
      assert.ok(pkg.contributes.menus.commandPalette.some((m) => m.command === id && (m.when === 'false' || m.when === 'resourceScheme == cowork-proposed')), id);
    }
  });

  it('describes exactly the settings the schema validates', () => {
    const declared = Object.keys(pkg.contributes.configuration.properties).map((k) => k.replace(/^cowork\./, '')).sort();
    assert.deepEqual(declared, [...SETTING_KEYS].sort());
    for (const [k, v] of Object.entries(pkg.contributes.configuration.properties)) assert.ok((v as { description?: string }).description, `${k} has a description`);
  });
});
