// The task's one sandbox (issue 13), in a real guest: every command of a task runs in the same
// bwrap, handed to its executor (sandbox-exec). What a call leaves running with nohup is there for
// the next call and gone once the task's sandbox stops; a plain `cmd &` ends with its call; a
// command's own limits (timeout, memory) end that command, not the sandbox, and its counters never
// reach the next command (whose cgroup may be an idle one taken again); `kill -9 -1` inside cannot end
// the executor; a second task's sandbox in the same guest sees none of the first's processes.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bashTool } from '../../extension/agent/tools/bashTool';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { bootGuest, startHelper, tempDir, waitFor } from './harness';

let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let root: Awaited<ReturnType<typeof tempDir>>;

const PORT = 8765;
/** Starts a background HTTP server that survives its call (nohup), and a plain job that must not. */
const SERVE = `nohup python3 -m http.server ${PORT} --bind 127.0.0.1 --directory /tmp >/tmp/serve.log 2>&1 & sleep 4444 & echo started`;
/** Polls the server from a later call (python's start takes a while under emulation); prints "up" or "down". */
const PROBE = `for i in $(seq 150); do curl -s -o /dev/null --noproxy '*' http://127.0.0.1:${PORT}/ && { echo up; exit 0; }; sleep 0.2; done; echo down`;

async function rootSh(script: string): Promise<string> {
  const r = await vm.sh(script, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

async function boxed(s: GuestSandbox, script: string): Promise<string> {
  const r = await s.run(script, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/**
 * Guest processes (seen by root, outside every sandbox) whose command line matches. Write a pattern
 * so that it does not match itself ('[h]ttp'): the shell that runs pgrep carries it in its own.
 */
const guestPids = async (pattern: string): Promise<string> => (await rootSh(`pgrep -f '${pattern}' || true`)).trim();

before(
  async () => {
    root = await tempDir('task-sandbox');
    const ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    await mkdir(path.join(root.dir, 'sessions'));
    client = startHelper();
    vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'task-sandbox');
    sb = GuestSandbox.for(vm);
  },
  { timeout: 300_000 },
);

after(async () => {
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await root?.dispose();
});

describe("the task's one sandbox", { timeout: 600_000 }, () => {
  it('a nohup server started by one call answers a later call; a plain background job ended with its call', { timeout: 180_000 }, async () => {
    assert.equal((await boxed(sb, SERVE)).trim(), 'started');
    assert.equal((await boxed(sb, PROBE)).trim(), 'up', 'the server is reachable from the next call');
    assert.equal(await guestPids('^sleep 4444$'), '', 'the plain `&` job was hung up with its call');
    assert.notEqual(await guestPids(`[h]ttp.server ${PORT}`), '', 'the nohup server runs');
    // the same pid namespace for both calls: the later call sees the server among its processes
    assert.match(await boxed(sb, 'ps -eo args'), /http\.server 8765/);
  });

  it("a command's timeout ends that command only: the sandbox and its server live on", { timeout: 120_000 }, async () => {
    const r = await sb.run('echo begun; sleep 55', { timeoutMs: 2_000 });
    assert.ok(r.timedOut, 'the command timed out');
    assert.equal(r.signal, 'KILL');
    assert.equal(await guestPids('^sleep 55$'), '', 'the timed-out command is gone');
    assert.equal((await boxed(sb, PROBE)).trim(), 'up', 'the server still answers');
  });

  it("a second task's sandbox sees none of the first's processes and cannot reach its loopback", { timeout: 120_000 }, async () => {
    const other = new GuestSandbox(vm, sb.spec);
    try {
      const ps = await boxed(other, 'ps -eo pid,args');
      assert.doesNotMatch(ps, /http\.server/, 'no process of the first sandbox is visible');
      assert.match(ps, /^\s*1 .*sandbox-exec/m, 'its own executor is its pid 1');
      // (and its own two egress relays: the guest's egress sockets exist from the agent's start)
      assert.deepEqual(ps.trim().split('\n').slice(1).filter((l) => !/sandbox-exec|ps -eo|socat .* UNIX-CONNECT:\/run\/cowork\/egress\//.test(l)), [], 'nothing but its executor, its egress relays and ps itself');
      // its own network namespace: 127.0.0.1:PORT there is nobody's
      assert.equal((await boxed(other, `curl -s -o /dev/null --noproxy '*' --max-time 5 http://127.0.0.1:${PORT}/ && echo up || echo down`)).trim(), 'down');
      // everything it may signal is its own: the first task's server survives
      await other.run('kill -9 -1', { timeoutMs: 30_000 });
      assert.equal((await boxed(sb, PROBE)).trim(), 'up', "the first task's server survived the second's kill -9 -1");
    } finally {
      await other.stop();
    }
  });

  it("a command that ended clean leaves its cgroup to the next; one that hit its memory limit does not, and the next starts with clean counters", { timeout: 180_000 }, async () => {
    const cgroupOf = async (): Promise<string> => (await boxed(sb, 'cat /proc/self/cgroup')).trim();
    const first = await cgroupOf();
    assert.equal(await cgroupOf(), first, 'the idle cgroup was taken again');
    const hog = await sb.runArgv(['/usr/bin/python3', '-c', "x = []\nwhile True: x.append(b'\\x01' * (32 << 20))"], { timeoutMs: 120_000 });
    assert.ok(hog.oomKilled && hog.signal === 'KILL', `the hog was OOM-killed: ${JSON.stringify({ ...hog, stdout: undefined, stderr: hog.stderr.toString() })}`);
    const next = await sb.run('cat /proc/self/cgroup', { timeoutMs: 60_000 });
    assert.deepEqual({ code: next.code, oomKilled: next.oomKilled, pidsLimited: next.pidsLimited }, { code: 0, oomKilled: false, pidsLimited: false }, 'the next command reports nothing of the hog');
  });

  it('kill -9 -1 inside ends what runs there but not the executor: the next call runs', { timeout: 120_000 }, async () => {
    // kill(-1) spares its caller and the namespace's init: the server goes, the shell and the executor stay
    assert.equal((await boxed(sb, 'kill -9 -1; echo after-kill')).trim(), 'after-kill');
    assert.ok(await waitFor(async () => (await guestPids(`[h]ttp.server ${PORT}`)) === '', 20_000), 'the server died');
    assert.equal((await boxed(sb, 'echo next')).trim(), 'next', 'the executor (pid 1, not signalable from inside) still serves');
  });

  it("stop() ends everything in the task's sandbox and removes its cgroup; the next command starts a new one", { timeout: 180_000 }, async () => {
    await boxed(sb, SERVE);
    assert.equal((await boxed(sb, PROBE)).trim(), 'up');
    await sb.stop();
    assert.equal(await guestPids(`[h]ttp.server ${PORT}`), '', 'the server died with the sandbox');
    assert.equal(await guestPids('[s]andbox-exec'), '', 'the executor is gone');
    assert.equal((await rootSh(`find /sys/fs/cgroup/cowork -maxdepth 2 -name 'sb-${sb.key}' | wc -l`)).trim(), '0', "the sandbox's cgroup is gone");
    assert.equal((await boxed(sb, `curl -s -o /dev/null --noproxy '*' --max-time 5 http://127.0.0.1:${PORT}/ && echo up || echo down`)).trim(), 'down', 'a new sandbox, without the server');
  });

  it("the person's Stop during a bash call ends the sandbox, background server included", { timeout: 180_000 }, async () => {
    await boxed(sb, SERVE);
    assert.equal((await boxed(sb, PROBE)).trim(), 'up');
    const ac = new AbortController();
    let begun!: () => void;
    const started = new Promise<void>((r) => (begun = r));
    const call = bashTool.run({ command: 'echo begun; sleep 66' }, { sandbox: sb, signal: ac.signal, setPlan: () => undefined, commandTimeoutMs: 120_000, onOutput: (c) => {
        if (c.includes('begun')) begun();
      },
    });
    await started;
    ac.abort();
    const outcome = await call;
    assert.ok(outcome.isError && /stopped by the person/.test(outcome.content), outcome.content);
    assert.ok(await waitFor(async () => (await guestPids(`[h]ttp.server ${PORT}|^sleep 66$`)) === '', 20_000), 'the server and the call are gone after the Stop');
  });
});
