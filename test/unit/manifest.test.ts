// The manifest and the code agree: every contributed command has a handler and an id, internal
// commands are hidden from the palette, and every setting in package.json is in the schema, with
// the default it validates and the scope SETTING_SCOPES decided for it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SETTING_KEYS, SETTING_SCOPES, SettingsSchema } from '../../extension/config/settings';
import { Commands } from '../../extension/ids';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  engines: { vscode: string };
  contributes: { commands: { command: string }[]; menus: { commandPalette: { command: string; when: string }[] }; configuration: { properties: Record<string, { description?: string; scope?: string; default?: unknown }> } };
};
// commands are registered in extension/commands/ (one file per command group), by the review and by the panel (Open Task in Editor)
const commandFiles = readdirSync(path.join(root, 'extension', 'commands')).filter((f) => f.endsWith('.ts')).map((f) => `commands/${f}`);
const registration = [...commandFiles, 'review/registerReview.ts', 'panel/coworkViewProvider.ts'].map((f) => readFileSync(path.join(root, 'extension', f), 'utf8')).join('\n');

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
    for (const [k, v] of Object.entries(pkg.contributes.configuration.properties)) assert.ok(v.description, `${k} has a description`);
  });

  it('gives every setting the scope decided in SETTING_SCOPES (a new setting needs a decision there)', () => {
    for (const key of SETTING_KEYS) {
      const declared = pkg.contributes.configuration.properties[`cowork.${key}`]?.scope;
      assert.equal(declared, SETTING_SCOPES[key].scope, `cowork.${key}: package.json says scope ${String(declared)}, SETTING_SCOPES says ${SETTING_SCOPES[key].scope}`);
      assert.ok(SETTING_SCOPES[key].why.length > 10, `cowork.${key} says why`);
    }
    // only lists can narrow (a workspace adds entries); everything else a workspace can set would widen
    for (const key of SETTING_KEYS.filter((k) => SETTING_SCOPES[k].scope === 'window')) {
      assert.ok(Array.isArray(SettingsSchema.shape[key].parse(undefined)), `cowork.${key} is workspace-settable but not a list that narrows`);
    }
  });

  it('shows the Settings UI the defaults the schema applies', () => {
    for (const key of SETTING_KEYS) assert.deepEqual(pkg.contributes.configuration.properties[`cowork.${key}`]?.default, SettingsSchema.shape[key].parse(undefined), `cowork.${key}`);
  });

  it('reads settings in one place only (extension/workbench/settings.ts)', () => {
    const readers = (function walk(dir: string): string[] {
      return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') && readFileSync(path.join(dir, e.name), 'utf8').includes('getConfiguration(') ? [path.relative(root, path.join(dir, e.name))] : []));
    })(path.join(root, 'extension'));
    assert.deepEqual(readers, [path.join('extension', 'workbench', 'settings.ts')]);
  });
});
