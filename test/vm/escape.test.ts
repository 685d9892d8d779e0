// The escape suite: attempts made from inside a sandboxed command in a real guest, each asserting
// that it fails and that nothing outside changed. Ends with "escape attempts: N, blocked: N,
// succeeded: 0". The egress proxy is the real one, reached as in the product (QEMU's guestfwd to
// its unix sockets), with a test HTTP server on the host allowed by exactly its address:port.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MemoryAudit } from '../../extension/egress/audit';
import { EGRESS_GUEST, egressSocketPaths } from '../../extension/egress/hostSockets';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy } from '../../extension/egress/proxy';
import type { ExecResult } from '../../extension/guest/guestAgent';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { bootGuest, startHelper, tempDir } from './harness';

const FAKE_KEY = 'sk-ant-api03-cowork-escape-suite-canary-0123456789';
process.env.ANTHROPIC_API_KEY = FAKE_KEY; // the helper inherits it; the guest must never see it

let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let proxy: EgressProxy;
const audit = new MemoryAudit();
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let sessions: string;
let server: http.Server;
let serverPort: number;
let loopbackAccepts = 0;
let loopbackServer: net.Server;
let loopbackPort: number;
let hostTreeBefore: string;
const results: { name: string; blocked: boolean }[] = [];

async function treeHash(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(rel, e.name);
      h.update(p);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) h.update(await readFile(path.join(dir, p)));
    }
  };
  await walk('');
  return h.digest('hex');
}

/** The workspace and its neighbour outside it (not the session disks, which the VM writes). */
const hostTree = async (): Promise<string> => (await treeHash(ws)) + (await readFile(path.join(root.dir, 'outside-secret.txt'), 'utf8'));
const out = (r: ExecResult): string => r.stdout.toString() + r.stderr.toString();
const run = (cmd: string, timeoutMs = 60_000): Promise<ExecResult> => sb.run(cmd, { timeoutMs });
const py = (code: string, timeoutMs = 60_000): Promise<ExecResult> => sb.runArgv(['/usr/bin/python3', '-'], { stdin: code, timeoutMs });
/** A syscall through ctypes; prints "ret errno". */
const syscall = (nr: number, args = ''): Promise<ExecResult> =>
  py(`import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\nr = libc.syscall(${nr}${args ? `, ${args}` : ''})\nprint(r, ctypes.get_errno())`);
const refusedSyscall = async (nr: number, args = ''): Promise<boolean> => {
  const r = await syscall(nr, args);
  const [ret, errno] = r.stdout.toString().trim().split(' ').map(Number);
  return ret === -1 && (errno === 1 || errno === 38); // EPERM or ENOSYS
};
const tcpRefused = (host: string, port: number): Promise<boolean> =>
  py(`import socket\ntry:\n socket.create_connection(('${host}', ${port}), timeout=3); print('CONNECTED')\nexcept Exception as e: print('REFUSED', e)`).then((r) => !out(r).includes('CONNECTED'));
const curl = (args: string): Promise<string> => run(`curl -sS -m 10 -w ' HTTP=%{http_code}' ${args} 2>&1; true`).then(out);

/** Registers one attempt; `escaped` returns true when the attempt got through. */
function attempt(name: string, escaped: () => Promise<boolean>): void {
  it(name, async () => {
    const e = await escaped();
    results.push({ name, blocked: !e });
    assert.equal(e, false, `escape succeeded: ${name}`);
    const alive = await vm.exec(['/bin/true']);
    assert.equal(alive.code, 0, 'the VM is still usable');
  });
}

before(async () => {
  root = await tempDir('escape');
  ws = path.join(root.dir, 'ws');
  sessions = path.join(root.dir, 'sessions');
  await mkdir(ws);
  await mkdir(sessions);
  await writeFile(path.join(ws, 'readme.txt'), 'original\n');
  await writeFile(path.join(root.dir, 'outside-secret.txt'), 'host secret outside the workspace\n');
  await symlink(path.join(root.dir, 'outside-secret.txt'), path.join(ws, 'link-out'));
  await symlink('../outside-secret.txt', path.join(ws, 'link-rel'));
  hostTreeBefore = await hostTree();

  server = http.createServer((req, res) => res.end(`allowed server saw ${req.headers.host}${req.url}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serverPort = (server.address() as net.AddressInfo).port;
  loopbackServer = net.createServer((s) => {
    loopbackAccepts++;
    s.destroy();
  });
  await new Promise<void>((r) => loopbackServer.listen(0, '127.0.0.1', r));
  loopbackPort = (loopbackServer.address() as net.AddressInfo).port;

  const names: Record<string, string> = { 'good.test': '127.0.0.1', 'sneaky.test': '127.0.0.1', 'denied.test': '127.0.0.1' };
  proxy = new EgressProxy({
    task: 'escape-suite',
    policy: new EgressPolicy({ allowed: ['good.test', `good.test:${serverPort}`, 'sneaky.test', `sneaky.test:${loopbackPort}`, `127.0.0.1:${serverPort}`, 'api.anthropic.com', '*.anthropic.com'], denied: ['denied.test'] }),
    audit,
    resolver: (h) => (names[h] ? Promise.resolve([names[h]]) : Promise.reject(Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }))),
  });
  await proxy.listenOn(egressSocketPaths('escape'));
  client = startHelper();
  vm = await bootGuest(client, ws, sessions, 'escape', { diskGiB: 1 }); // small, so filling it is quick
  sb = GuestSandbox.for(vm);
});

after(async () => {
  const blocked = results.filter((r) => r.blocked).length;
  console.log(`\nescape attempts: ${results.length}, blocked: ${blocked}, succeeded: ${results.length - blocked}`);
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await proxy?.close();
  server?.close();
  loopbackServer?.close();
  await root?.dispose();
});

describe('the sandbox works at all (controls, not attempts)', () => {
  it('runs as the unprivileged sandbox user in /workspace and reaches an allowed host through the proxy', async () => {
    const id = await run('id -u; id -un; pwd; cat /workspace/readme.txt');
    assert.equal(id.code, 0, out(id));
    const [uid, name, cwd, content] = id.stdout.toString().trim().split('\n');
    assert.equal(Number(uid), sb.spec.uid);
    assert.notEqual(Number(uid), 0);
    assert.equal(name, sb.spec.user);
    assert.equal(cwd, '/workspace');
    assert.equal(content, 'original');
    assert.match(await curl(`http://good.test:${serverPort}/ok`), /allowed server saw good.test:\d+\/ok HTTP=200/);
    assert.match(await curl(`-p http://good.test:${serverPort}/tunnel`), /allowed server saw good.test:\d+\/tunnel HTTP=200/);
    const w = await run('echo agent > /workspace/new.txt && echo t > /tmp/t && cat /workspace/new.txt /tmp/t');
    assert.equal(w.stdout.toString(), 'agent\nt\n');
  });
});

describe('escape attempts from a sandboxed command', () => {
  // Files
  attempt('read a host file outside the workspace by path traversal', async () => out(await run('cat /workspace/../outside-secret.txt ../outside-secret.txt 2>&1')).includes('host secret'));
  attempt('read a host file through an absolute symlink in the workspace', async () => out(await run('cat /workspace/link-out 2>&1')).includes('host secret'));
  attempt('read a host file through a relative symlink in the workspace', async () => out(await run('cat /workspace/link-rel 2>&1')).includes('host secret'));
  attempt('write the host workspace in review mode', async () => {
    await run('echo pwned > /workspace/readme.txt; echo pwned > /workspace/dropped.txt');
    return (await readFile(path.join(ws, 'readme.txt'), 'utf8')) !== 'original\n' || (await readdir(ws)).includes('dropped.txt');
  });
  attempt('reach the raw workspace share or the overlay internals', async () => (await run('ls /mnt/host /session/upper 2>&1; mount -t 9p workspace /mnt 2>&1')).code === 0);
  attempt('write outside /workspace and tmp (/etc, /usr, /, /var)', async () => (await run('for f in /etc/x /usr/x /x /var/x /home/x; do touch $f 2>/dev/null && echo WROTE $f; done')).stdout.toString().includes('WROTE'));
  attempt('create a setuid binary and use it to become root', async () => out(await run('cp /bin/bash /tmp/sbash && chmod 4755 /tmp/sbash; /tmp/sbash -p -c "id -u"')).trim().split('\n').includes('0'));
  attempt('use an existing setuid program (su, mount)', async () => /^0$/m.test(out(await run('su -c "id -u" root </dev/null 2>&1; mount -o remount,rw / 2>&1; id -u'))));
  attempt('chown a workspace file to root', async () => (await run('chown 0:0 /workspace/readme.txt')).code === 0);
  attempt('create a device node', async () => (await run('mknod /tmp/sda b 8 0')).code === 0);
  attempt('open the guest disks', async () => {
    // escaped when a disk node is visible in the sandbox or a byte of one can be read
    const r = await run('for d in /dev/vda /dev/vdb /dev/vdc /dev/sda; do [ -e $d ] && echo SEEN $d; head -c 1 $d 2>/dev/null | wc -c; done');
    return /SEEN|^[1-9]/m.test(r.stdout.toString());
  });
  attempt('read the guest ssh host key or root authorized_keys', async () => /PRIVATE KEY|ssh-ed25519/.test(out(await run('cat /etc/ssh/ssh_host_ed25519_key /root/.ssh/authorized_keys 2>&1'))));
  attempt('write a kernel setting in /proc/sys', async () => (await run('echo evil > /proc/sys/kernel/hostname')).code === 0);
  // Processes
  attempt('see the guest processes outside the sandbox', async () => /sshd|tini|agent\.py/.test(out(await run('ps -eo comm,args'))));
  attempt('signal every process it can see (kill -9 -1) and take the VM with it', async () => {
    await run('kill -9 -1; true');
    return (await vm.exec(['/bin/true'])).code !== 0;
  });
  attempt('ptrace another process', async () => {
    const r = await py(`import ctypes, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\npid = os.fork()\nif pid == 0:\n    time.sleep(5); os._exit(0)\nr = libc.ptrace(16, pid, 0, 0)\nprint(r, ctypes.get_errno()); os.kill(pid, 9)`);
    return !r.stdout.toString().startsWith('-1 1');
  });
  attempt('read another process memory (process_vm_readv)', () => refusedSyscall(310, '1, 0, 0, 0, 0, 0').then((x) => !x));
  attempt('inject keystrokes with TIOCSTI', async () => {
    const r = await py(`import fcntl, os, pty\nm, s = pty.openpty()\nfor req in (0x5412, 0x100005412):\n    try:\n        fcntl.ioctl(s, req, b'x'); print('INJECTED')\n    except OSError as e: print('refused', e.errno)`);
    return r.stdout.toString().includes('INJECTED') || !r.stdout.toString().includes('refused 1');
  });
  attempt('use TIOCLINUX', async () => {
    const r = await py(`import fcntl, pty\nm, s = pty.openpty()\ntry:\n    fcntl.ioctl(s, 0x541C, b'\\x06'); print('ALLOWED')\nexcept OSError as e: print('refused', e.errno)`);
    return !r.stdout.toString().includes('refused 1');
  });
  attempt('create an io_uring', () => refusedSyscall(425, '8, ctypes.create_string_buffer(120)').then((x) => !x));
  attempt('load a BPF program', () => refusedSyscall(321, '5, 0, 0').then((x) => !x));
  attempt('open a perf event', () => refusedSyscall(298, '0, 0, -1, 0, 0').then((x) => !x));
  attempt('use the kernel keyring (keyctl)', () => refusedSyscall(250, '0, 0').then((x) => !x));
  attempt('load a kernel module', async () => !(await refusedSyscall(313, '0, 0, 0')) || (await run('modprobe dummy 2>&1')).code === 0);
  attempt('kexec a new kernel', () => refusedSyscall(246, '0, 0, 0, 0').then((x) => !x));
  attempt('mount a file system', async () => (await run('mount -t tmpfs none /tmp 2>&1')).code === 0 || !(await refusedSyscall(165, 'b"none", b"/tmp", b"tmpfs", 0, 0')));
  attempt('create a nested user namespace', async () => (await run('unshare -Ur id -u 2>&1')).code === 0 || !(await refusedSyscall(272, '0x10000000')));
  attempt('clone into a new user namespace', () => refusedSyscall(56, '0x10000000 | 17, 0, 0, 0, 0').then((x) => !x));
  attempt('reboot or power off the VM from inside', async () => {
    await run('echo o > /proc/sysrq-trigger 2>/dev/null; reboot -f 2>/dev/null; poweroff -f 2>/dev/null; true');
    return !(await refusedSyscall(169, '0xfee1dead, 672274793, 0x4321fedc, 0')) || (await vm.exec(['/bin/true'])).code !== 0;
  });
  // Network, directly
  attempt('TCP to the QEMU gateway 10.0.2.2', () => tcpRefused('10.0.2.2', 22).then((x) => !x));
  attempt('TCP to the cloud metadata address', () => tcpRefused('169.254.169.254', 80).then((x) => !x));
  attempt('TCP to a public IP literal', () => tcpRefused('1.1.1.1', 443).then((x) => !x));
  attempt('TCP to a host loopback port that is listening', async () => {
    const blocked = (await tcpRefused('10.0.2.2', loopbackPort)) && (await tcpRefused('127.0.0.1', loopbackPort));
    return !blocked || loopbackAccepts > 0;
  });
  attempt('TCP to the guest sshd from the sandbox', async () => !(await tcpRefused('10.0.2.15', 22)) || !(await tcpRefused('127.0.0.1', 22)));
  attempt('DNS over UDP 53', async () => /ANSWER/.test(out(await py(`import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\ntry:\n    s.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01', ('10.0.2.3', 53)); s.recv(512); print('ANSWER')\nexcept Exception as e: print('no', e)`))));
  attempt('DNS over TCP 53', () => tcpRefused('10.0.2.3', 53).then((x) => !x));
  attempt('resolve a name with the system resolver', async () => /RESOLVED/.test(out(await py(`import socket\ntry:\n    socket.getaddrinfo('deb.debian.org', 443); print('RESOLVED')\nexcept Exception as e: print('no', e)`))));
  attempt('open a raw IP socket', async () => /OPENED/.test(out(await py(`import socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('OPENED')\nexcept Exception as e: print('no', e)`))));
  attempt('open a packet socket', async () => /OPENED/.test(out(await py(`import socket\ntry:\n    socket.socket(17, socket.SOCK_RAW, 0); print('OPENED')\nexcept Exception as e: print('no', e)`))));
  attempt("TCP to QEMU's egress forwarding address from the sandbox (its two ports and another)", async () =>
    !(await tcpRefused(EGRESS_GUEST.address, EGRESS_GUEST.httpPort)) || !(await tcpRefused(EGRESS_GUEST.address, EGRESS_GUEST.socksPort)) || !(await tcpRefused(EGRESS_GUEST.address, 22)));
  attempt("from the guest's root, outside the sandbox: the forwarding address on another port, the host's gateway, a public IP", async () => {
    // the door restrict=on leaves open is the two guestfwd ports only, and only the guest's root network namespace has a route to them
    const code = [
      'import socket',
      `for host, port in (('${EGRESS_GUEST.address}', 22), ('${EGRESS_GUEST.address}', 80), ('10.0.2.2', ${loopbackPort}), ('1.1.1.1', 443)):`,
      '    try:',
      '        socket.create_connection((host, port), timeout=3); print("CONNECTED", host, port)',
      '    except Exception as e: print("REFUSED", host, port, e)',
    ].join('\n');
    const r = await vm.exec(['python3', '-c', code], { timeoutMs: 60_000 });
    return out(r).includes('CONNECTED') || (out(r).match(/REFUSED/g) ?? []).length !== 4 || loopbackAccepts > 0;
  });
  attempt('hold 300 proxy connections open at once, to start as many processes on the host (QEMU runs a socat per connection)', async () => {
    // Each connection sends all of a request but its last line; only when all 300 are open are the
    // requests ended. A connection answered then was open the whole time, so the number answered is
    // how many reached the host at once, each through its own socat there.
    const r = await py(
      [
        'import socket',
        `head = b"GET http://good.test:${serverPort}/ HTTP/1.1\\r\\nHost: good.test:${serverPort}\\r\\n"`,
        'held = []',
        'for i in range(300):',
        '    try:',
        '        s = socket.create_connection(("127.0.0.1", 3128), timeout=10); s.sendall(head); held.append(s)',
        '    except OSError: pass',
        'answered = 0',
        'for s in held:',
        '    try:',
        '        s.settimeout(30); s.sendall(b"\\r\\n"); answered += s.recv(64).startswith(b"HTTP/1.1 200")',
        '    except OSError: pass',
        'print("held", len(held), "answered", answered)',
      ].join('\n'),
      240_000,
    );
    const m = /held (\d+) answered (\d+)/.exec(out(r));
    assert.ok(m, `the sandbox reports what it held: ${out(r)}`);
    assert.ok(Number(m[2]) >= 100, `the connections reached the proxy (${m[0]}): the cap is what limits them`);
    console.log(`escape: ${m[0]} (egress-relay's cap: 128 open at once)`);
    return Number(m[2]) > 128;
  });
  attempt("reach root in the guest through the egress relay, which reads what the sandbox sends (it must serve as nobody, no capabilities)", async () => {
    // (this shell's own command line holds the name too: skipped by its pid)
    const r = await vm.sh('for p in /proc/[0-9]*; do [ "$p" = "/proc/$$" ] && continue; if tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "cowork/egress-relay $"; then grep -E "^(Uid|CapEff):" $p/status | tr "\\n\\t" "  "; echo; fi; done');
    const lines = out(r).split('\n').filter((l) => l.trim());
    assert.ok(lines.length >= 1, `the relay runs: ${out(r)}`);
    console.log(`escape: egress-relay ${lines.join(' | ')}`);
    return lines.some((l) => !/Uid:\s+65534\s+65534\s+65534\s+65534/.test(l) || !/CapEff:\s+0+\s/.test(`${l} `));
  });
  attempt('talk to the proxy socket with a non-HTTP protocol to reach the host', async () => /SSH-2.0|root@/.test(out(await run('printf "SSH-2.0-x\\r\\n" | socat -t 2 - UNIX-CONNECT:/run/cowork/egress/http.sock 2>&1'))));
  // Network, through the proxy
  attempt('HTTP to a denied domain', async () => !/HTTP=403/.test(await curl('http://denied.test/')));
  attempt('CONNECT to a denied domain', async () => !/HTTP=403|403/.test(await curl('-p http://denied.test:443/')));
  attempt('an allowed name that resolves to a loopback port that is not listed', async () => (await curl(`http://sneaky.test:${loopbackPort}/`)).includes('HTTP=200') || loopbackAccepts > 0);
  attempt('Host header that does not match the request', async () => !/HTTP=403/.test(await curl(`-H "Host: denied.test" http://good.test:${serverPort}/`)));
  attempt('CONNECT to an allowed host, then a request for another host inside the tunnel', async () => /allowed server saw/.test(await curl(`-p -H "Host: denied.test" http://good.test:${serverPort}/`)));
  attempt('the model API through the HTTP proxy (even when listed)', async () => !/403/.test(await curl('https://api.anthropic.com/v1/messages')) || !/403/.test(await curl('http://api.anthropic.com/v1/messages')));
  attempt('the model API through SOCKS5', async () => /HTTP=2/.test(await curl('--socks5-hostname 127.0.0.1:1080 https://api.anthropic.com/')));
  attempt('CONNECT to an IP literal that is not listed', async () => !/403/.test(await curl('-p http://93.184.216.34:443/')));
  attempt('CONNECT to the metadata address', async () => !/403/.test(await curl('-p http://169.254.169.254:80/latest/meta-data/')));
  // Resources
  attempt('fork bomb', async () => {
    // Long enough for the bomb to reach pids.max even on a slow, loaded emulated guest (3 s was
    // not always: the command then ended before the limit and looked like an escape).
    const r = await run(':(){ :|:& };: ; sleep 20', 120_000);
    const after = await run('echo still-fine');
    return !(r.pidsLimited || r.signal !== null || r.timedOut) || after.stdout.toString() !== 'still-fine\n';
  });
  attempt('fill the memory', async () => {
    const r = await py("x = []\nwhile True: x.append(b'\\x01' * (32 << 20))", 120_000);
    return !(r.oomKilled && r.signal === 'KILL');
  });
  attempt('fill the session disk', async () => {
    const r = await run('dd if=/dev/zero of=/workspace/fill bs=1M 2>&1; echo rc=$?', 300_000);
    // The engine only reads the full disk (the change set); the guest's own root is a separate tmpfs.
    const engine = await vm.sh('ls /session/upper >/dev/null && echo x > /run/engine-probe && echo engine-ok');
    await run('rm -f /workspace/fill');
    const afterwards = await run('echo ok > /workspace/after-fill.txt && cat /workspace/after-fill.txt');
    return !/No space left/.test(out(r)) || engine.stdout.toString() !== 'engine-ok\n' || afterwards.stdout.toString() !== 'ok\n';
  });
  // Secrets
  attempt('read the API key from the environment', async () => out(await run('env; cat /proc/self/environ')).includes(FAKE_KEY));
  attempt('read the API key from /proc of other processes', async () => out(await run('cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n"')).includes(FAKE_KEY));
  attempt('find the API key in files', async () => out(await run(`grep -rIs "${FAKE_KEY.slice(0, 24)}" /etc /tmp /workspace /usr/local /run /proc/1/ 2>/dev/null | head -1`)).includes(FAKE_KEY));
});

describe('nothing outside changed', () => {
  it('the host tree (workspace and its neighbours) is byte-for-byte as before', async () => {
    assert.equal(await hostTree(), hostTreeBefore);
  });
  it('the guest root processes are alive and the guest agent still answers', async () => {
    const r = await vm.sh('pgrep -x sshd >/dev/null && pgrep -x tini >/dev/null && echo alive');
    assert.equal(r.stdout.toString(), 'alive\n');
  });
  it('the loopback server never saw a connection and the model API was never contacted', () => {
    assert.equal(loopbackAccepts, 0);
    assert.ok(!audit.records.some((r) => r.allowed && /anthropic/.test(r.host)));
    assert.ok(audit.records.some((r) => !r.allowed && r.host === 'denied.test'), 'denials are audited');
  });
});
