import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sandboxEnv, sandboxLimits, taskSandboxArgv } from '../../extension/guest/sandbox';

const spec = { user: 'cw-1234abcd', uid: 12345, cpus: 2, memoryMiB: 2048 };

describe("the task's sandbox argv", () => {
  const argv = taskSandboxArgv(spec);
  const pairs = (flag: string): string[][] => argv.flatMap((a, i) => (a === flag ? [[argv[i + 1]!, argv[i + 2]!]] : []));

  it('unshares every namespace, forbids nested user namespaces and dies with its parent', () => {
    for (const f of ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session']) assert.ok(argv.includes(f), f);
    assert.ok(!argv.includes('--share-net'), 'no network namespace sharing');
    assert.deepEqual(argv.slice(argv.indexOf('--cap-drop'), argv.indexOf('--cap-drop') + 2), ['--cap-drop', 'ALL']);
  });

  it('makes only /workspace, tmp and the egress sockets writable, and the root read-only', () => {
    assert.deepEqual(pairs('--bind'), [['/run/cowork/egress', '/run/cowork/egress'], ['/session/tmp', '/tmp'], ['/workspace', '/workspace'], ['/cache', '/cache']]);
    assert.deepEqual(pairs('--ro-bind'), [['/usr', '/usr'], ['/etc', '/etc']]);
    assert.ok(argv.includes('--remount-ro'));
    assert.ok(!argv.some((a) => a.startsWith('/mnt/host') || a === '/root' || a === '/session/upper'), 'no host share, root home or overlay internals');
  });

  it('applies the seccomp filter and runs the executor as its pid 1 with the number of its control descriptor, never a command', () => {
    assert.equal(argv[argv.indexOf('--seccomp') + 1], '10');
    assert.ok(argv.includes('--as-pid-1'), 'nothing inside can signal the executor');
    assert.deepEqual(argv.slice(argv.indexOf('--') + 1), ['/usr/local/lib/cowork/sandbox-exec', '11']);
    assert.equal(argv[argv.indexOf('--chdir') + 1], '/workspace');
  });

  it('gives the command a clean environment whose only way out is the proxy', () => {
    const env = sandboxEnv(spec);
    assert.equal(env.HTTPS_PROXY, 'http://127.0.0.1:3128');
    assert.equal(env.ALL_PROXY, 'socks5h://127.0.0.1:1080');
    assert.ok(argv.includes('--clearenv'));
    assert.ok(!Object.keys(env).some((k) => /KEY|TOKEN|SECRET/i.test(k)));
  });

  it('limits memory, cpu and processes per command', () => {
    const l = sandboxLimits(spec);
    assert.equal(l.memoryMax, 1024 * 1024 * 1024);
    assert.equal(l.cpuMax, '180000 100000');
    assert.equal(l.pidsMax, 1024);
    assert.notEqual(sandboxLimits(spec).name, l.name, 'each command has its own cgroup');
  });
});
