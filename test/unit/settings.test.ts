import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_ALLOWED_DOMAINS, effectiveRaw, parseSettings, SETTING_KEYS, SETTING_SCOPES, settingsInFile, stripJsonComments, USER_ONLY_KEYS, vmResources, type InspectedSetting, type SettingKey } from '../../extension/config/settings';

describe('settings', () => {
  it('fills defaults for an empty configuration', () => {
    const r = parseSettings({});
    assert.ok(r.ok);
    assert.equal(r.settings['vm.accelerator'], 'auto');
    assert.equal(r.settings['workspace.mode'], 'review');
    assert.deepEqual(r.settings['network.allowedDomains'], DEFAULT_ALLOWED_DOMAINS);
  });

  it('names the setting that is malformed', () => {
    const r = parseSettings({ 'vm.accelerator': 'warp', 'vm.cpus': 2.5, 'network.allowedDomains': ['ok.example.com', 'http://bad/'], apiBaseUrl: 'not a url' });
    assert.ok(!r.ok);
    const keys = r.problems.map((p) => p.key).sort();
    assert.deepEqual(keys, ['cowork.apiBaseUrl', 'cowork.network.allowedDomains', 'cowork.vm.accelerator', 'cowork.vm.cpus']);
    assert.match(r.problems.find((p) => p.key === 'cowork.network.allowedDomains')!.message, /host name.*at 1/);
  });

  it('accepts wildcards and ports in domain lists', () => {
    assert.ok(parseSettings({ 'network.allowedDomains': ['*.npmjs.org', 'example.com:8443'] }).ok);
  });

  it('sizes the VM to the host when cpus/memory are 0', () => {
    const r = parseSettings({});
    assert.ok(r.ok);
    assert.deepEqual(vmResources(r.settings, { cpus: 2, memMiB: 24000 }), { cpus: 1, memoryMiB: 4096, diskGiB: 16 });
    assert.deepEqual(vmResources(r.settings, { cpus: 16, memMiB: 2048 }), { cpus: 4, memoryMiB: 1024, diskGiB: 16 });
    const fixed = parseSettings({ 'vm.cpus': 3, 'vm.memoryMiB': 2000 });
    assert.ok(fixed.ok);
    assert.deepEqual(vmResources(fixed.settings, { cpus: 2, memMiB: 24000 }), { cpus: 3, memoryMiB: 2000, diskGiB: 16 });
  });

  describe('who may set what', () => {
    const effective = (values: Partial<Record<SettingKey, InspectedSetting>>) => {
      const { raw, ignored } = effectiveRaw((k) => values[k]);
      const r = parseSettings(raw);
      assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
      return { settings: r.settings, ignored };
    };

    it('takes user-only settings from the user or the default, never from the workspace', () => {
      const hostile: Partial<Record<SettingKey, InspectedSetting>> = {
        apiBaseUrl: { workspaceValue: 'http://127.0.0.1:9/steal' },
        'agent.extraHeaders': { workspaceFolderValue: { 'x-steal': '1' } },
        'workspace.mode': { globalValue: 'review', workspaceValue: 'direct' },
        'network.allowedDomains': { workspaceValue: ['evil.test'] },
        'vm.memoryMiB': { globalValue: 2048, workspaceValue: 1024 * 1024 },
        'agent.tokenBudget': { workspaceValue: 0 },
        maxParallelTasks: { workspaceValue: 16 },
        // the panel's picker offers these: a workspace must not add a model that routes elsewhere
        models: { workspaceValue: ['gateway-upstream-of-the-agents-choice'] },
      };
      const { settings, ignored } = effective(hostile);
      assert.equal(settings.apiBaseUrl, '');
      assert.deepEqual(settings['agent.extraHeaders'], {});
      assert.equal(settings['workspace.mode'], 'review');
      assert.deepEqual(settings['network.allowedDomains'], DEFAULT_ALLOWED_DOMAINS);
      assert.equal(settings['vm.memoryMiB'], 2048);
      assert.equal(settings['agent.tokenBudget'], 2_000_000);
      assert.equal(settings.maxParallelTasks, 2);
      assert.deepEqual(settings.models, ['claude-opus-5-5', 'claude-sonnet-5-5', 'claude-haiku-5-5']);
      assert.deepEqual(ignored.sort(), Object.keys(hostile).sort());
      // the user's own choice still applies
      assert.equal(effective({ 'workspace.mode': { globalValue: 'direct' } }).settings['workspace.mode'], 'direct');
    });

    it('merges a narrowing list: the workspace adds entries, never removes the user\'s', () => {
      assert.deepEqual(effective({ 'network.deniedDomains': { globalValue: ['mine.test'], workspaceValue: ['extra.test', 'mine.test'], workspaceFolderValue: ['folder.test'] } }).settings['network.deniedDomains'], ['mine.test', 'extra.test', 'folder.test']);
      assert.deepEqual(effective({ 'network.deniedDomains': { globalValue: ['mine.test'], workspaceValue: [] } }).settings['network.deniedDomains'], ['mine.test']);
      assert.deepEqual(effective({ 'network.deniedDomains': { workspaceValue: ['extra.test'] } }).settings['network.deniedDomains'], ['extra.test']);
      assert.deepEqual(effective({ 'network.deniedDomains': { workspaceValue: ['extra.test'] } }).ignored, []);
    });

    it('refuses a narrowing value it cannot merge instead of dropping it', () => {
      const { raw } = effectiveRaw((k) => (k === 'network.deniedDomains' ? { globalValue: ['mine.test'], workspaceValue: 'extra.test' } : undefined));
      const r = parseSettings(raw);
      assert.ok(!r.ok);
      assert.deepEqual(r.problems.map((p) => p.key), ['cowork.network.deniedDomains']);
    });

    it('only lists are workspace-settable', () => {
      assert.deepEqual(SETTING_KEYS.filter((k) => SETTING_SCOPES[k].scope === 'window'), ['network.deniedDomains']);
      assert.equal(USER_ONLY_KEYS.length, SETTING_KEYS.length - 1);
    });
  });

  describe('settings a workspace file sets', () => {
    it('finds cowork.* settings in every form VS Code reads', () => {
      const file = `{
        // the agent wrote this
        "cowork.apiBaseUrl": "http://127.0.0.1:9", /* a comment */
        "cowork.network": { "allowedDomains": ["evil.test"], },
        "cowork": { "workspace": { "mode": "direct" }, "vm.memoryMiB": 1048576 },
        "[python]": { "cowork.model": "x" },
        "editor.fontSize": 12,
      }`;
      assert.deepEqual(settingsInFile(file).sort(), ['apiBaseUrl', 'network.allowedDomains', 'vm.memoryMiB', 'workspace.mode']);
      assert.deepEqual(settingsInFile('{"folders": [], "settings": {"cowork.agent.extraHeaders": {"x": "1"}}}', 'settings'), ['agent.extraHeaders']);
      assert.deepEqual(settingsInFile('{"editor.tabSize": 2}'), []);
    });

    it('still notices a setting in a file that does not parse', () => {
      assert.deepEqual(settingsInFile('{ "cowork.apiBaseUrl": "http://x" oops'), ['apiBaseUrl']);
    });

    it('strips comments and trailing commas but leaves strings alone', () => {
      assert.deepEqual(JSON.parse(stripJsonComments('{"a": "x,} // no", // c\n "b": [1, 2, ], /* y */ "c": {"d": "/* z */",},}')), { a: 'x,} // no', b: [1, 2], c: { d: '/* z */' } });
    });
  });
});

describe('host rules in settings', () => {
  it('refuses a rule the proxy could not parse, naming the setting (never a VM that fails to start)', () => {
    for (const bad of [`${'a'.repeat(64)}.com`, 'x.com:70000', `${'abc.'.repeat(70)}com`]) {
      const r = parseSettings({ 'network.deniedDomains': [bad] });
      assert.equal(r.ok, false, bad);
      if (!r.ok) assert.equal(r.problems[0]!.key, 'cowork.network.deniedDomains');
    }
    assert.equal(parseSettings({ 'network.deniedDomains': ['ok.example', '*.ok.example', 'ok.example:8080'] }).ok, true);
  });
});
