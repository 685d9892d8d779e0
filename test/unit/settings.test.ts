import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_ALLOWED_DOMAINS, parseSettings, vmResources } from '../../extension/config/settings';

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
});
