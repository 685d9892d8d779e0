// cowork.network.extraCaCertificates: the host files checked in full (readable, small, only X.509
// certificates), a bad one a settings problem naming the file, a workspace value ignored; the
// sandbox binds the guest's copy and points the TLS clients at it only when the setting is set; a
// changed bundle makes a warm VM not fit.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { EXTRA_CA_MAX_BYTES, loadExtraCa, readExtraCa } from '../../extension/config/extraCa';
import { effectiveRaw, parseSettings, SettingsSchema, USER_ONLY_KEYS } from '../../extension/config/settings';
import { sandboxEnv, taskSandboxArgv } from '../../extension/guest/sandbox';
import { bootShapeDifference, helperStartParams, vmStartParams } from '../../extension/session/vmStartParams';

// two self-signed test CAs (public data, made for this test with openssl req -x509)
const CA1 = `-----BEGIN CERTIFICATE-----
MIIBiDCCAS+gAwIBAgIUC21nNSEkjLDhx6NvfS0aVWBGRsowCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOQ293b3JrIHRlc3QgQ0EwIBcNMjYxMjA3MTkzMDU2WhgPMjEy
NjExMTMxOTMwNTZaMBkxFzAVBgNVBAMMDkNvd29yayB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEmJ1TXUM2tvW0EeakokVkOS/oTWULFBu4zC6sAWtp
xTKZpI1XvENhpM0/GuG2HHMObGThs2Oh2oohbFGvZMAauqNTMFEwHQYDVR0OBBYE
FIxf3VOJGYfXfMe20VoAyJlnC6SjMB8GA1UdIwQYMBaAFIxf3VOJGYfXfMe20VoA
yJlnC6SjMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgNwzHkohv
49NHBkboGKvnsnCC+susWUkZXHsWJTW3ICQCIGpRVNkU9tPcpJupBNUygpj3pFpY
x2qyZBfFLYw/a76A
-----END CERTIFICATE-----
`;
const CA2 = `-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUBHBSkSoFzj8Q4Fx2l3jX2WSuw2UwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQQ293b3JrIHRlc3QgQ0EgMjAgFw0yNjEyMDcxOTMwNTZaGA8y
MTI2MTExMzE5MzA1NlowGzEZMBcGA1UEAwwQQ293b3JrIHRlc3QgQ0EgMjBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABOJamX/9Yo8oTMMc6ZMD8kxqMWIVciTxr/Lr
jwklnjC6A/7sTX4g2UNrGhTWmex2Coj3UfTXuEJ47TsXpU163ZijUzBRMB0GA1Ud
DgQWBBTkPbwZ1MGk0fju5hEeaQ9WMN/02DAfBgNVHSMEGDAWgBTkPbwZ1MGk0fju
5hEeaQ9WMN/02DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCv
LT1OAZZdmAreBcRaz7YzNpnxdIgRHjRN8NnWS6d3sAIhAPIu62oKPcghn/nDeH2N
yPjElJLRkFusziWlTa4Wiw5B
-----END CERTIFICATE-----
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'cowork-extra-ca-'));
after(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string | Buffer): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('reading cowork.network.extraCaCertificates', () => {
  it('takes the certificates of the listed files, re-encoded, once each, and nothing else of them', () => {
    const a = file('a.pem', `# our proxy's root\n${CA1}`);
    const both = file('both.pem', `${CA2}\n${CA1}`);
    const r = readExtraCa([a, both]);
    assert.ok(r.ok && r.ca, JSON.stringify(r));
    assert.equal(r.ca.count, 2);
    assert.equal(r.ca.pem, CA1 + CA2);
    assert.doesNotMatch(r.ca.pem, /#/);
    assert.match(r.ca.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(readExtraCa([]), { ok: true, ca: undefined });
  });

  it('refuses a missing file, garbage, a broken certificate, a private key, a relative path and an oversized file, naming each file and what to do', () => {
    const missing = path.join(dir, 'nope.pem');
    const garbage = file('garbage.pem', 'hello, not a certificate\n');
    const broken = file('broken.pem', CA1.replace('MIIBiDCCAS', 'MIIBiDxxAS'));
    const key = file('key.pem', `${CA1}-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n`);
    const big = file('big.pem', Buffer.alloc(EXTRA_CA_MAX_BYTES + 1, 'a'));
    const r = readExtraCa([missing, garbage, broken, key, 'certs/ca.pem', big]);
    assert.equal(r.ok, false);
    const problems = r.ok ? [] : r.problems;
    assert.equal(problems.length, 6, problems.join('\n'));
    assert.match(problems[0]!, new RegExp(`^${missing} cannot be read \\(ENOENT`));
    assert.match(problems[1]!, /garbage\.pem holds no PEM certificate/);
    assert.match(problems[2]!, /broken\.pem: certificate 1 of 1 does not parse as X\.509/);
    assert.match(problems[3]!, /key\.pem holds a "PRIVATE KEY" block \(block 2\)/);
    assert.match(problems[4]!, /"certs\/ca\.pem" is not an absolute path/);
    assert.match(problems[5]!, /big\.pem cannot be read \(\d+ bytes, more than 1048576\)/);
    for (const p of problems.filter((x) => !x.includes('big.pem'))) assert.match(p, /point the setting at a PEM file/);
    assert.throws(() => loadExtraCa([garbage]), /^Error: cowork\.network\.extraCaCertificates: .*garbage\.pem holds no PEM certificate/);
  });

  it('refuses a FIFO at once, without blocking the extension host on it (settings are read on every panel update)', () => {
    const fifo = path.join(dir, 'ca.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = readExtraCa([fifo]);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.problems[0]!, /ca\.fifo cannot be read \(not a regular file/);
  });

  it('is a settings problem naming the setting and the file (nothing starts on it); a good file passes', () => {
    const garbage = file('garbage2.pem', 'junk');
    const bad = parseSettings({ 'network.extraCaCertificates': [garbage] });
    assert.equal(bad.ok, false);
    if (!bad.ok) {
      assert.equal(bad.problems[0]!.key, 'cowork.network.extraCaCertificates');
      assert.match(bad.problems[0]!.message, /garbage2\.pem holds no PEM certificate/);
    }
    const good = parseSettings({ 'network.extraCaCertificates': [file('good.pem', CA1)] });
    assert.ok(good.ok);
    const none = parseSettings({});
    assert.deepEqual(none.ok && none.settings['network.extraCaCertificates'], []);
  });

  it('is machine-scoped: a workspace value is ignored (a CA of its choosing could vouch for any site)', () => {
    assert.ok(USER_ONLY_KEYS.includes('network.extraCaCertificates'));
    const { raw, ignored } = effectiveRaw((k) => (k === 'network.extraCaCertificates' ? { workspaceValue: [file('ws.pem', CA2)] } : undefined));
    assert.equal(raw['network.extraCaCertificates'], undefined);
    assert.deepEqual(ignored, ['network.extraCaCertificates']);
    const r = parseSettings(raw);
    assert.ok(r.ok && r.settings['network.extraCaCertificates'].length === 0);
  });
});

describe("the sandbox's view of the extra CA certificates", () => {
  const spec = { user: 'cw-1234abcd', uid: 12345, cpus: 2, memoryMiB: 2048 };
  const vars = ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'PIP_CERT', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO'];

  it('without the setting: no bind of /run/cowork/ca, no CA variables', () => {
    const argv = taskSandboxArgv(spec);
    assert.ok(!argv.includes('/run/cowork/ca'));
    const env = sandboxEnv(spec);
    for (const v of vars) assert.equal(env[v], undefined, v);
  });

  it('with it: /run/cowork/ca read-only, Node gets extra.pem, the rest the combined bundle', () => {
    const argv = taskSandboxArgv({ ...spec, extraCa: true });
    const i = argv.indexOf('/run/cowork/ca');
    assert.deepEqual(argv.slice(i - 1, i + 2), ['--ro-bind', '/run/cowork/ca', '/run/cowork/ca']);
    assert.ok(i > argv.indexOf('--tmpfs') && argv.indexOf('/run/cowork/ca') < argv.indexOf('--remount-ro'), 'bound after /run is a tmpfs');
    const env = sandboxEnv({ ...spec, extraCa: true });
    assert.equal(env.NODE_EXTRA_CA_CERTS, '/run/cowork/ca/extra.pem');
    for (const v of vars.slice(1)) assert.equal(env[v], '/run/cowork/ca/bundle.pem', v);
    for (const v of vars) assert.ok(argv.includes(v), `${v} is set in the sandbox`);
  });
});

describe('the warm VM and the extra CA certificates', () => {
  const place = { vmId: 'task-a', workspace: '/w', sessionDisk: '/s/task-a.qcow2' };
  const base = SettingsSchema.parse({ 'vm.cpus': 2, 'vm.memoryMiB': 1024 });

  it('a changed, added or removed bundle is a difference; the helper is never sent the certificates', () => {
    const one = file('one.pem', CA1);
    const two = file('two.pem', CA2);
    const none = vmStartParams(place, base, undefined);
    const withOne = vmStartParams(place, { ...base, 'network.extraCaCertificates': [one] }, undefined);
    const withTwo = vmStartParams(place, { ...base, 'network.extraCaCertificates': [two] }, undefined);
    assert.equal(bootShapeDifference(withOne, vmStartParams(place, { ...base, 'network.extraCaCertificates': [one] }, undefined)), undefined);
    assert.match(bootShapeDifference(none, withOne) ?? '', /^extraCaCertificates null → "1 certificates, sha256 [0-9a-f]{12}"$/);
    assert.match(bootShapeDifference(withOne, withTwo) ?? '', /^extraCaCertificates /);
    assert.match(bootShapeDifference(withOne, none) ?? '', /^extraCaCertificates .* → null$/);
    assert.equal('extraCa' in helperStartParams(withOne), false);
    assert.ok(withOne.extraCa && !('extraCa' in none));
  });

  it('a file gone bad since the settings were read fails the start, naming it', () => {
    const p = file('later.pem', CA1);
    const settings = { ...base, 'network.extraCaCertificates': [p] };
    writeFileSync(p, 'truncated');
    assert.throws(() => vmStartParams(place, settings, undefined), /cowork\.network\.extraCaCertificates: .*later\.pem holds no PEM certificate/);
  });
});
