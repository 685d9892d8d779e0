// A workspace's guest layer must never weaken the guest (issue 12): its setup script is consented
// to, but whatever it (or a package) does, the layer is refused when it leaves a setuid/setgid file
// outside the base recipe's allow-list or changes a file the sandbox and the guest agent rely on.
// These attempts run the real layer hook (vm-host/image/layer-customize.sh) on a small root made
// of this host's own programs (no image build, no VM), with the attack as the setup script. And
// the package list cannot smuggle an apt option or a version pin past the schema.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseGuestSetup } from '../../extension/config/guestSetup';
import { GuestLayerSpec } from '../../extension/protocol/vmHost';
import { attempt } from '../support/attempts';

const HOOK = path.resolve(__dirname, '..', '..', 'vm-host', 'image', 'layer-customize.sh');
const TOOLS = ['sh', 'env', 'chmod', 'cp', 'touch', 'mkdir', 'ln', 'cat', 'rm'];
let work: string;

/** A root with /bin/<tool> for TOOLS (copied with their shared libraries), /usr/bin/bwrap and an allow-listed setuid file. */
async function makeRoot(name: string): Promise<string> {
  const root = path.join(work, name);
  await mkdir(path.join(root, 'bin'), { recursive: true });
  await mkdir(path.join(root, 'usr', 'bin'), { recursive: true });
  await mkdir(path.join(root, 'tmp'), { recursive: true });
  await mkdir(path.join(root, 'etc', 'ssh'), { recursive: true });
  const libs = new Set<string>();
  for (const tool of TOOLS) {
    const bin = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    await copyFile(bin, path.join(root, 'bin', tool));
    await chmod(path.join(root, 'bin', tool), 0o755);
    for (const m of execFileSync('ldd', [bin], { encoding: 'utf8' }).matchAll(/(\/\S+\.so[^\s]*)/g)) libs.add(m[1]!);
  }
  for (const lib of libs) {
    await mkdir(path.join(root, path.dirname(lib)), { recursive: true });
    await copyFile(lib, path.join(root, lib));
  }
  await writeFile(path.join(root, 'usr', 'bin', 'bwrap'), 'the real bwrap\n', { mode: 0o755 });
  await writeFile(path.join(root, 'usr', 'bin', 'su'), 'allowed setuid\n');
  await chmod(path.join(root, 'usr', 'bin', 'su'), 0o4755);
  await writeFile(path.join(root, 'etc', 'ssh', 'sshd_config'), 'PermitRootLogin prohibit-password\n');
  await symlink('/bin/sh', path.join(root, 'usr', 'bin', 'sh')).catch(() => undefined);
  return root;
}

function runHook(root: string, setup: string): Promise<{ code: number; stderr: string }> {
  return (async () => {
    const script = path.join(work, `${path.basename(root)}.setup.sh`);
    await writeFile(script, setup);
    const allow = path.join(work, 'allow');
    await writeFile(allow, '/usr/bin/su\n');
    return new Promise((resolve) => {
      execFile('sh', [HOOK, root], { env: { ...process.env, COWORK_LAYER_PACKAGES: '', COWORK_LAYER_SETUP: script, COWORK_SETUID_ALLOW: allow } }, (err, _stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
  })();
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'cowork-layer-sec-'));
}, { timeout: 30_000 });

after(async () => {
  await rm(work, { recursive: true, force: true });
}, { timeout: 30_000 });

describe('a guest layer cannot weaken the guest', { timeout: 120_000 }, () => {
  it('a harmless setup script passes (the checks do not refuse everything)', { timeout: 30_000 }, async () => {
    assert.equal(process.getuid?.(), 0, 'these attempts chroot, so they run as root (as on the test machines)');
    const root = await makeRoot('harmless');
    const r = await runHook(root, 'mkdir -p /opt/tool && echo ok > /opt/tool/ready\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(path.join(root, 'opt', 'tool', 'ready'), 'utf8'), 'ok\n', 'the script ran in the chroot');
  });

  it('setuid and setgid files outside the allow-list are refused', { timeout: 60_000 }, async () => {
    await attempt('guest-layer', 'setup script leaves a setuid root shell', async () => {
      const root = await makeRoot('setuid');
      const r = await runHook(root, 'cp /bin/sh /bin/rootsh && chmod 4755 /bin/rootsh\n');
      assert.notEqual(r.code, 0, 'the layer is refused');
      assert.match(r.stderr, /setuid\/setgid files outside the allow-list: \/bin\/rootsh/);
    });
    await attempt('guest-layer', 'setup script replaces an allowed setuid file with a shell', async () => {
      const root = await makeRoot('setuid-swap');
      const r = await runHook(root, 'cp /bin/sh /usr/bin/su && chmod 4755 /usr/bin/su\n');
      assert.notEqual(r.code, 0, 'the layer is refused');
      assert.match(r.stderr, /changed files the sandbox relies on/);
    });
    await attempt('guest-layer', 'setup script leaves a setgid file', async () => {
      const root = await makeRoot('setgid');
      const r = await runHook(root, 'touch /usr/bin/grp && chmod 2755 /usr/bin/grp\n');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /\/usr\/bin\/grp/);
    });
  });

  it('changes to what the sandbox relies on are refused', { timeout: 60_000 }, async () => {
    await attempt('guest-layer', 'setup script replaces bwrap with a shim', async () => {
      const root = await makeRoot('bwrap');
      const r = await runHook(root, 'echo "exec \\"\\$@\\"" > /usr/bin/bwrap\n');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /changed files the sandbox relies on/);
    });
    await attempt('guest-layer', 'setup script adds /etc/ld.so.preload', async () => {
      const root = await makeRoot('preload');
      const r = await runHook(root, 'echo /tmp/evil.so > /etc/ld.so.preload\n');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /changed files the sandbox relies on/);
    });
    await attempt('guest-layer', 'setup script rewrites sshd_config', async () => {
      const root = await makeRoot('sshd');
      const r = await runHook(root, 'echo "PermitEmptyPasswords yes" >> /etc/ssh/sshd_config\n');
      assert.notEqual(r.code, 0);
    });
  });

  it('the package list cannot carry apt options, pins or paths', { timeout: 10_000 }, async () => {
    await attempt('guest-layer', 'an apt option as a package name', () => {
      assert.equal(parseGuestSetup(JSON.stringify({ packages: ['-oDpkg::Pre-Invoke::=touch /x'] })).kind, 'invalid');
      assert.ok(!GuestLayerSpec.safeParse({ packages: ['--allow-unauthenticated'] }).success);
    });
    await attempt('guest-layer', 'a version pin, another release or a local .deb', () => {
      for (const p of ['bash=5.0-1', 'bash/sid', '/tmp/evil.deb', 'evil_1.0_amd64.deb ']) assert.ok(!GuestLayerSpec.safeParse({ packages: [p] }).success, p);
    });
  });
});
