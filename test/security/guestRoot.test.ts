// Issue 10, classes 5, 6 and the guest part of 8, against a real guest: root in the guest (the
// change scan, the reader behind diffs/Accept/direct mode, Discard) never follows a symlink the
// sandbox made, never reads or deletes outside the upper dir, is not stalled by a huge sparse file,
// a FIFO or a big folder, and the agent's next tool call never races the scan of the previous one.
// Every attack runs from inside the sandbox, as the agent would, and is raced where a race is the
// attack.
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentLoop } from '../../extension/agent/loop';
import { AGENT_TOOLS } from '../../extension/agent/tools';
import { TranscriptStore } from '../../extension/agent/transcript';
import { discardInGuest, readChangeSet } from '../../extension/changes/changeSet';
import { applyDirectly, DirectRecord } from '../../extension/changes/direct';
import { readProposedBatch } from '../../extension/changes/readBatch';
import { SCAN_BUDGET_MS } from '../../extension/guest/guestAgent';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { attempt } from '../support/attempts';
import { say, ScriptedModel, text, toolUse } from '../support/scriptedModel';
import { bootGuest, startHelper, tempDir } from '../vm/harness';

const AREA = 'guest-root';
let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
/** bytes root can read in the guest and the agent must never get: the guest's ssh host key, fw_cfg's copy, /root's canary */
const secrets: { name: string; bytes: Buffer }[] = [];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const b = (s: string): Buffer => Buffer.from(s);

async function rootSh(script: string): Promise<string> {
  const r = await vm.sh(script, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

async function agentSh(script: string): Promise<string> {
  const r = await sb.run(script, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `${script}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** No buffer the guest returned may hold a secret (or its hash, for the scan's sha256 fields). */
function assertNoSecret(what: string, data: Buffer | undefined): void {
  if (!data) return;
  for (const s of secrets) assert.ok(!data.includes(s.bytes), `${what} returned bytes of ${s.name}`);
}

/** Starts a racer in the sandbox for `seconds` (a sandboxed command lives only as long as it runs). */
function race(script: string, seconds: number): Promise<unknown> {
  return sb.run(`timeout ${seconds} bash -c '${script}' || true`, { timeoutMs: (seconds + 30) * 1000 });
}

before(
  async () => {
    root = await tempDir('guestroot');
    ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    await mkdir(path.join(root.dir, 'sessions'));
    await writeFile(path.join(ws, 'canary.txt'), 'host canary\n');
    await writeFile(path.join(ws, 'keep.txt'), 'keep\n');
    client = startHelper();
    vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'guestroot');
    sb = GuestSandbox.for(vm);
    await rootSh('echo guest-root-canary-7c1e > /root/canary && mkdir -p /var/canary && echo var-canary > /var/canary/f');
    secrets.push({ name: 'the ssh host key', bytes: Buffer.from((await rootSh('cat /etc/ssh/ssh_host_ed25519_key')).split('\n').slice(1, 3).join('\n')) });
    secrets.push({ name: "fw_cfg's host key", bytes: Buffer.from((await rootSh('cat /sys/firmware/qemu_fw_cfg/by_name/opt/cowork/host_key/raw')).split('\n').slice(1, 3).join('\n')) });
    secrets.push({ name: '/root/canary', bytes: b('guest-root-canary-7c1e') });
    assert.ok(secrets.every((s) => s.bytes.length > 10), 'the secrets were read');
  },
  { timeout: 300_000 },
);

after(async () => {
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await root?.dispose();
});

describe('class 5: root in the guest never follows the sandbox symlinks', { timeout: 900_000 }, () => {
  it('a folder that is a symlink to /etc/ssh, fw_cfg, /root or /mnt/host is never read through', { timeout: 120_000 }, async () => {
    await attempt(AREA, 'read-through-planted-symlink-folders', async () => {
      await agentSh('cd /workspace && ln -s /etc/ssh s1 && ln -s /sys/firmware/qemu_fw_cfg/by_name/opt/cowork/host_key s2 && ln -s /root s3 && ln -s /mnt/host s4');
      const got = await readProposedBatch(vm, ['s1/ssh_host_ed25519_key', 's1/sshd_config', 's2/raw', 's3/canary', 's4/canary.txt'].map(b));
      for (const [i, data] of got.entries()) {
        assertNoSecret(`read ${i}`, data);
        assert.equal(data, undefined, `read ${i} must find nothing: a symlinked folder is not followed`);
      }
      const cs = await readChangeSet(vm);
      const listed = cs.changes.filter((c) => /^s[1-4]/.test(c.display));
      assert.deepEqual(listed.map((c) => [c.display, c.kind]), [['s1', 'symlink'], ['s2', 'symlink'], ['s3', 'symlink'], ['s4', 'symlink']]);
    });
  });

  it('a folder swapped for a symlink between scan and read never yields bytes from outside (raced)', { timeout: 300_000 }, async () => {
    await attempt(AREA, 'swap-folder-for-symlink-race', async () => {
      const racer = race(
        'cd /workspace; t=(/etc/ssh /sys/firmware/qemu_fw_cfg/by_name/opt/cowork/host_key /root /mnt/host); n=(ssh_host_ed25519_key raw canary canary.txt); ' +
          'while true; do for i in 0 1 2 3; do rm -rf d$i; ln -s ${t[$i]} d$i; rm d$i; mkdir d$i; echo x > d$i/${n[$i]}; done; done',
        40,
      );
      const rels = ['d0/ssh_host_ed25519_key', 'd1/raw', 'd2/canary', 'd3/canary.txt'].map(b);
      let hits = 0;
      let reads = 0;
      let scans = 0;
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        const got = await readProposedBatch(vm, rels);
        reads += got.length;
        for (const d of got) {
          assertNoSecret('the reader', d);
          if (d) {
            // the racer's own file, whole or caught between its creation and its write
            assert.ok(d.toString() === 'x\n' || d.length === 0, `the reader returns the agent file or nothing, not ${JSON.stringify(d.toString().slice(0, 80))}`);
            hits++;
          }
        }
        const cs = await readChangeSet(vm);
        scans++;
        for (const c of cs.changes) {
          for (const s of secrets) assert.notEqual(c.sha256, sha(s.bytes), `the scan hashed ${s.name}`);
          // under the raced folders only the racer's own file, whole ("x\n") or just created (empty)
          if (/^d[0-3]\//.test(c.display) && c.kind !== 'deleted') {
            assert.ok(c.sha256 === sha(b('x\n')) || c.sha256 === sha(Buffer.alloc(0)), `the scan listed ${c.display} (${c.size} bytes) from outside`);
          }
        }
      }
      await racer;
      console.log(`# swap race: ${reads} reads (${hits} of the agent's file), ${scans} scans, nothing from outside`);
      assert.ok(hits > 0, 'the racer ran while reading (some reads found its file)');
    });
  });

  it('a FIFO in the upper dir cannot hang the reader or the scan', { timeout: 120_000 }, async () => {
    await attempt(AREA, 'fifo-hangs-root', async () => {
      await agentSh('cd /workspace && mkfifo pipe');
      const t0 = Date.now();
      const [data] = await readProposedBatch(vm, [b('pipe')]);
      assert.equal(data, undefined, 'a FIFO is not a file to read');
      const cs = await readChangeSet(vm);
      assert.ok(cs.problems.some((p) => p.display === 'pipe'), 'the FIFO is reported as left out');
      assert.ok(Date.now() - t0 < 30_000, 'answered without waiting on the FIFO');
    });
  });
});

describe('class 5: discard deletes nothing outside the upper dir', { timeout: 600_000 }, () => {
  it('a path whose parent is a symlink to / or /mnt/host deletes nothing', { timeout: 120_000 }, async () => {
    await attempt(AREA, 'discard-through-symlink-to-root', async () => {
      await agentSh('cd /workspace && ln -s / p && ln -s /mnt/host q && ln -s /root r && ln -s /var/canary v');
      await assert.rejects(discardInGuest(vm, ['p/root/canary', 'p/var/canary', 'q/canary.txt', 'v/f'].map(b)), /not discarded/);
      await discardInGuest(vm, [b('r'), b('v')]); // the links themselves: removed, not what they point to
      assert.equal((await rootSh('cat /root/canary /var/canary/f')).trim(), 'guest-root-canary-7c1e\nvar-canary');
      assert.equal(await readFile(path.join(ws, 'canary.txt'), 'utf8'), 'host canary\n');
      assert.equal((await rootSh('ls -A /session/upper')).split('\n').includes('r'), false, 'the link r itself was discarded');
    });
  });

  it('a folder raced into a symlink to /root while discarding deletes nothing there', { timeout: 300_000 }, async () => {
    await attempt(AREA, 'discard-swap-race', async () => {
      const racer = race('cd /workspace; while true; do rm -rf e; mkdir e; echo x > e/canary; mkdir -p e/f; rm -rf e; ln -s /root e; rm e; ln -s /var/canary e; rm e; done', 30);
      const end = Date.now() + 20_000;
      let n = 0;
      while (Date.now() < end) {
        await discardInGuest(vm, [b('e/canary'), b('e/f')]).catch(() => undefined);
        n++;
      }
      await racer;
      assert.equal((await rootSh('cat /root/canary /var/canary/f')).trim(), 'guest-root-canary-7c1e\nvar-canary', `after ${n} raced discards`);
      assert.equal(await readFile(path.join(ws, 'canary.txt'), 'utf8'), 'host canary\n');
      console.log(`# discard race: ${n} discards, canaries intact`);
    });
  });
});

describe('class 8 (guest): the scan has a budget and cannot be stalled', { timeout: 600_000 }, () => {
  it('runs in its own cgroup with cpu and memory limits', { timeout: 60_000 }, async () => {
    const out = await rootSh('for p in $(pgrep -f "cowork/agent.py"); do cat /proc/$p/cgroup; done; cat /sys/fs/cgroup/cowork-engine/cpu.max /sys/fs/cgroup/cowork-engine/memory.max');
    assert.match(out, /^0::\/cowork-engine$/m);
    assert.match(out, /^100000 100000$/m);
    assert.match(out, /^\d+$/m, 'memory.max is a number, not "max"');
  });

  it('a 100 GiB sparse file is listed without being read', { timeout: 120_000 }, async () => {
    await attempt(AREA, 'sparse-100gib-stalls-scan', async () => {
      await agentSh('cd /workspace && truncate -s 100G sparse.bin');
      const t0 = Date.now();
      const cs = await readChangeSet(vm);
      const ms = Date.now() - t0;
      const e = cs.changes.find((c) => c.display === 'sparse.bin');
      assert.ok(e, 'listed');
      assert.equal(e.size, 100 * 1024 ** 3);
      assert.equal(e.sha256, undefined);
      assert.equal(e.hashSkipped, 'too-large');
      assert.ok(ms < SCAN_BUDGET_MS, `scanned in ${ms} ms`);
      await assert.rejects(readProposedBatch(vm, [b('sparse.bin')], { maxBytes: 50 * 1024 * 1024 }), /larger than/);
      console.log(`# sparse 100 GiB: scan ${ms} ms`);
    });
  });

  it('a folder of 10,000 entries is scanned within the budget', { timeout: 300_000 }, async () => {
    await attempt(AREA, 'ten-thousand-entries-stall-scan', async () => {
      await agentSh('mkdir -p /workspace/many && cd /workspace/many && seq -f f%g 10000 | xargs touch && for i in $(seq 50); do echo $i > g$i; done');
      const t0 = Date.now();
      const cs = await readChangeSet(vm);
      const ms = Date.now() - t0;
      const many = cs.changes.filter((c) => c.display.startsWith('many/'));
      assert.ok(ms < 2 * SCAN_BUDGET_MS + 10_000, `the scan answered in ${ms} ms, within its budget`);
      assert.ok(many.length === 10_050 || cs.changes.length > 0, 'listed (or said it stopped at its budget)');
      const again = Date.now();
      await readChangeSet(vm);
      console.log(`# 10,050 new files: first scan ${ms} ms (${many.length} listed), again ${Date.now() - again} ms (hash cache)`);
      await discardInGuest(vm, [b('many')]);
    });
  });
});

describe('class 6: no race with the next tool call', { timeout: 900_000 }, () => {
  let model: ScriptedModel;
  let baseURL: string;
  let n = 0;

  before(
    async () => {
      model = new ScriptedModel();
      baseURL = await model.start();
    },
    { timeout: 30_000 },
  );
  after(async () => {
    await model?.close();
  });

  async function loopWith(afterToolCall: (call: { name: string; mayWrite: boolean }) => Promise<void>, onToolStart: () => void): Promise<AgentLoop> {
    const transcript = await TranscriptStore.open(path.join(root.dir, 'transcripts', `t${++n}.jsonl`));
    return new AgentLoop({
      client: new Anthropic({ apiKey: 'sk-ant-test', baseURL, maxRetries: 0 }),
      model: 'claude-test',
      maxTokens: 1024,
      tokenBudget: 0,
      commandTimeoutMs: 120_000,
      system: 'test',
      tools: AGENT_TOOLS,
      transcript,
      sandbox: () => Promise.resolve(sb),
      reconnect: () => vm.reconnect(),
      onEvent: (e) => e.type === 'tool_start' && onToolStart(),
      afterToolCall,
    });
  }

  it('direct mode only ever writes a version the agent finished writing', { timeout: 400_000 }, async () => {
    await attempt(AREA, 'direct-mode-half-written-race', async () => {
      const A = randomBytes(3 * 1024 * 1024);
      const B = randomBytes(3 * 1024 * 1024);
      await writeFile(path.join(ws, 'a.src'), A);
      await writeFile(path.join(ws, 'b.src'), B);
      const known = new Set([sha(A), sha(B)]);
      const record = await DirectRecord.open(path.join(root.dir, 'direct'));
      const seen: string[] = [];
      let scanning = false;
      let overlapped = 0;
      const settle = async (call: { mayWrite: boolean }): Promise<void> => {
        if (!call.mayWrite) return;
        scanning = true;
        try {
          const cs = await readChangeSet(vm);
          await applyDirectly(vm, ws, record, cs.changes.filter((c) => c.display === 'target.bin'));
          const host = await readFile(path.join(ws, 'target.bin')).catch(() => undefined);
          if (host) seen.push(sha(host));
        } finally {
          scanning = false;
        }
      };
      const loop = await loopWith(settle, () => scanning && overlapped++);
      model.play(
        say(toolUse('bash', { command: 'cp a.src target.bin' }, 'w1')),
        // rewrites it non-atomically for a while; the scan of w1 must be over before this starts
        say(toolUse('bash', { command: 'for i in $(seq 15); do cat b.src > target.bin; cat a.src > target.bin; done; cat b.src > target.bin' }, 'w2')),
        say(toolUse('bash', { command: 'for i in $(seq 10); do cat a.src > target.bin; cat b.src > target.bin; done' }, 'w3')),
        say(text('done')),
      );
      assert.equal(await loop.send('write', new AbortController().signal), 'done');
      assert.equal(overlapped, 0, 'no tool call started while a scan was running');
      assert.equal(seen.length, 3, 'a scan after every call');
      for (const h of seen) assert.ok(known.has(h), `the host got a version that is neither A nor B (${h})`);
      assert.deepEqual(seen, [sha(A), sha(B), sha(B)]);
    });
  });

  it('a background write after the call ends is never seen (the command cgroup is gone)', { timeout: 300_000 }, async () => {
    await attempt(AREA, 'background-write-after-call', async () => {
      const listings: boolean[] = [];
      const settle = async (): Promise<void> => {
        const cs = await readChangeSet(vm);
        listings.push(cs.changes.some((c) => c.display === 'late.txt'));
      };
      const loop = await loopWith(settle, () => undefined);
      model.play(
        say(toolUse('bash', { command: '(sleep 1; echo x > late.txt) & echo started' }, 'b1')),
        say(toolUse('bash', { command: 'sleep 3; ls late.txt 2>&1 || true' }, 'b2')),
        say(text('done')),
      );
      assert.equal(await loop.send('bg', new AbortController().signal), 'done');
      const cs = await readChangeSet(vm);
      listings.push(cs.changes.some((c) => c.display === 'late.txt'));
      assert.deepEqual(listings, [false, false, false], 'late.txt is seen consistently or not at all: here not at all');
      assert.equal((await rootSh("pgrep -f '^sleep 1$' || true")).trim(), '', 'the background job died with its call');
    });
  });
});
