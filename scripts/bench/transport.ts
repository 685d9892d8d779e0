// Issue 13 figures: where a command's time goes between the host and the guest, and what the SSH
// cipher costs. Each part is measured on its own, on one booted guest:
//   sshecho   a raw SSH exec channel running `cat`: one line there and back (TCP, QEMU's user
//             network, the cipher on both ends; no agent, no fork)
//   agentping the guest agent's ping: the same plus one JSON line each way through the Python agent
//   exec      a bare /bin/true through the agent: the same plus the agent's fork/exec/wait and
//             the out/exit events (JSON + base64)
//   guest     /bin/true in a loop inside the guest: the fork/exec alone, under the same emulation
//   framing   the host's work per event: JSON.parse + schema + base64, measured in-process
// and the SSH channel throughput host → guest and guest → host per cipher the guest's sshd offers,
// plus ssh2 ↔ ssh2 on loopback (host only) with and without ssh2's native binding.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ssh2 from 'ssh2';
import { AgentEvent } from '../../extension/guest/agentProtocol';
import type { GuestAgent } from '../../extension/guest/guestAgent';
import { GuestVm } from '../../extension/guest/guestVm';
import { SSH_ALGORITHMS, SshConnection } from '../../extension/guest/sshConnection';
import { TcpTransport } from '../../extension/guest/transport';
import { VmHostClient } from '../../extension/guest/vmHostClient';
import { benchAccelerator, figure, fmtMs, median, printTable, saveFigures, setAccelerator, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const N = Number(process.env.BENCH_TRANSPORT_RUNS ?? 30);
const MIB = 1024 * 1024;
const VOLUME = 32 * MIB;
const CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr'];
const idOf = (cipher: string): string => cipher.replace(/@.*$/, '').replace(/[^a-z0-9]/g, '');

/** ssh2 client ↔ ssh2 server over loopback TCP, VOLUME bytes server → client; MiB/s. */
async function loopback(cipher: string): Promise<number> {
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519').private;
  const server = new ssh2.Server({ hostKeys: [hostKey], algorithms: { cipher: [cipher] as never } }, (c) => {
    c.on('authentication', (ctx) => ctx.accept());
    c.on('error', () => undefined);
    c.on('ready', () =>
      c.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec) => {
          const ch = acceptExec();
          const chunk = Buffer.alloc(256 * 1024, 7);
          let left = VOLUME;
          const pump = (): void => {
            while (left > 0) {
              left -= chunk.length;
              if (!ch.write(chunk)) return void ch.once('drain', pump);
            }
            ch.exit(0);
            ch.end();
          };
          pump();
        });
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const client = new ssh2.Client();
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve).once('error', reject);
      client.connect({ sock: net.connect(port, '127.0.0.1'), username: 'bench', algorithms: { ...SSH_ALGORITHMS, cipher: [cipher], hmac: ['hmac-sha2-256-etm@openssh.com'] } as never });
    });
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) =>
      client.exec('x', (err, ch) => {
        if (err) return reject(err);
        let n = 0;
        ch.on('data', (c: Buffer) => (n += c.length));
        ch.on('close', () => (n >= VOLUME ? resolve() : reject(new Error(`short: ${n}`))));
      }),
    );
    return VOLUME / MIB / ((performance.now() - t0) / 1000);
  } finally {
    client.end();
    server.close();
  }
}

/** The same in a child process in which ssh2's native binding cannot load (as after an install that skipped its script). */
function loopbackWithoutBinding(cipher: string): number {
  const r = spawnSync(process.execPath, ['--import', path.join(__dirname, 'hide-ssh2-binding.mjs'), '--import', 'tsx', __filename, '--loopback', cipher], { encoding: 'utf8', cwd: ROOT });
  const [mode, v] = r.stdout.trim().split('\n').slice(-2);
  if (r.status !== 0 || mode !== 'no-binding' || !Number.isFinite(Number(v))) throw new Error(`loopback without ssh2's binding failed (${mode}): ${r.stderr}`);
  return Number(v);
}

async function timed(fn: () => Promise<unknown>, what = 'a round trip', limitMs = 120_000): Promise<number> {
  const t = performance.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([fn(), new Promise((_r, reject) => (timer = setTimeout(() => reject(new Error(`bench: ${what} took over ${limitMs} ms`)), limitMs)))]).finally(() => clearTimeout(timer));
  return performance.now() - t;
}

/** The agent's own ping op (no fork in the guest): one JSON line each way. */
function agentPinger(agent: GuestAgent): () => Promise<void> {
  const a = agent as unknown as { send(r: { op: 'ping'; id: number }): void; onEvent(ev: AgentEvent): void };
  const onEvent = a.onEvent.bind(a);
  let waiting: (() => void) | undefined;
  a.onEvent = (ev) => {
    if (ev.ev === 'pong') waiting?.();
    onEvent(ev);
  };
  let id = 1_000_000;
  return () =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      a.send({ op: 'ping', id: ++id });
    });
}

/** A raw exec channel running `cat`: one line out, wait for it to come back. */
async function sshEcho(conn: SshConnection): Promise<number[]> {
  const ch = await conn.exec('cat');
  const rtts: number[] = [];
  let waiting: (() => void) | undefined;
  ch.on('data', () => waiting?.());
  for (let i = 0; i < N; i++) rtts.push(await timed(() => new Promise<void>((r) => ((waiting = r), ch.write(`${i}\n`))), 'the SSH echo'));
  ch.end();
  return rtts;
}

/** MiB/s host → guest (`cat > /dev/null`) and guest → host (`head -c`), on a connection using `cipher`. */
async function channelThroughput(vm: GuestVm, cipher: string): Promise<{ down: number; up: number; negotiated: string } | undefined> {
  let conn: SshConnection;
  try {
    conn = await SshConnection.connect(new TcpTransport(vm.info.host, vm.info.port), vm.info, { algorithms: { ...SSH_ALGORITHMS, cipher: [cipher], hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-256'] } });
  } catch {
    return undefined; // the guest's sshd does not offer it
  }
  try {
    const chunk = Buffer.alloc(256 * 1024, 7);
    const downMs = await timed(async () => {
      const ch = await conn.exec('cat > /dev/null');
      ch.resume(); // the channel closes only once its (empty) output has been read
      const closed = new Promise<void>((r) => ch.on('close', () => r()));
      for (let left = VOLUME; left > 0; left -= chunk.length) if (!ch.write(chunk)) await new Promise((r) => ch.once('drain', r));
      ch.end();
      await closed;
    }, `${VOLUME} bytes host → guest`, 600_000);
    let got = 0;
    const upMs = await timed(async () => {
      const ch = await conn.exec(`head -c ${VOLUME} /dev/zero`);
      ch.on('data', (c: Buffer) => (got += c.length));
      await new Promise<void>((r) => ch.on('close', () => r()));
    }, `${VOLUME} bytes guest → host`, 600_000);
    if (got !== VOLUME) throw new Error(`guest → host: ${got} of ${VOLUME} bytes`);
    return { down: VOLUME / MIB / (downMs / 1000), up: VOLUME / MIB / (upMs / 1000), negotiated: conn.negotiated?.cs.cipher ?? '?' };
  } finally {
    conn.close();
  }
}

/** Host-side cost of one output event: JSON.parse, schema check, base64 decode (µs, 4 KiB payload). */
function framingMicros(): number {
  const line = JSON.stringify({ ev: 'out', id: 7, fd: 1, b64: Buffer.alloc(4096, 65).toString('base64') });
  const rounds = 20_000;
  let n = 0;
  const t = performance.now();
  for (let i = 0; i < rounds; i++) {
    const ev = AgentEvent.parse(JSON.parse(line));
    if (ev.ev === 'out') n += Buffer.from(ev.b64, 'base64').length;
  }
  if (n !== rounds * 4096) throw new Error('framing');
  return ((performance.now() - t) * 1000) / rounds;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  // host only: what each cipher costs ssh2, with and without its native binding
  for (const c of ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com']) {
    const native = await loopback(c);
    const js = loopbackWithoutBinding(c);
    figure(`transport.loopback.${idOf(c)}.mibps`, native, 'MiB/s', `ssh2 ↔ ssh2 on loopback, ${c}, native binding`);
    figure(`transport.loopback.${idOf(c)}.nobinding.mibps`, js, 'MiB/s', `ssh2 ↔ ssh2 on loopback, ${c}, without ssh2's binding`);
    rows.push({ what: `ssh2 loopback ${c}`, value: `${native.toFixed(0)} MiB/s`, note: `${js.toFixed(0)} MiB/s without ssh2's native binding` });
  }
  const us = framingMicros();
  figure('transport.framing.us', us, 'us', 'host: parse + check + decode one 4 KiB output event');
  rows.push({ what: 'host framing per 4 KiB output event', value: `${us.toFixed(1)} µs`, note: 'JSON.parse + zod + base64' });

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-tr-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  try {
    const vm = await GuestVm.start(client, { vmId: 'bench-transport', workspace: ws, sessionDisk: path.join(tmp, 's.qcow2'), accelerator: benchAccelerator(), cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 2 });
    setAccelerator(vm.info.accelerator);
    const n = vm.connection.negotiated;
    rows.push({ what: 'negotiated', value: n ? `${n.cs.cipher}, ${n.kex}, ${n.serverHostKey}` : '?' });
    await vm.exec(['/bin/true']);
    const ping = agentPinger((vm as unknown as { agent: GuestAgent }).agent);
    const echo = await sshEcho(vm.connection);
    const pings: number[] = [];
    const exec: number[] = [];
    for (let i = 0; i < N; i++) {
      pings.push(await timed(ping, 'the agent ping'));
      exec.push(await timed(() => vm.exec(['/bin/true']), 'a bare exec'));
    }
    const loop = await vm.sh(`s=$(date +%s%N); for i in $(seq ${N * 3}); do /bin/true; done; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`);
    const guestTrue = Number(loop.stdout.toString().trim()) / 1000 / (N * 3);
    const parts: [string, string, number, string][] = [
      ['transport.sshecho.rtt.ms', 'SSH channel round trip (cat)', median(echo), 'TCP + QEMU user net + cipher, both ways'],
      ['transport.agentping.rtt.ms', 'agent ping round trip', median(pings), `+ ${fmtMs(median(pings) - median(echo))} for the Python agent's JSON lines`],
      ['transport.exec.true.ms', 'bare /bin/true through the agent', median(exec), `+ ${fmtMs(median(exec) - median(pings))} for fork/exec/wait and its events`],
      ['transport.guest.true.ms', '/bin/true in a loop inside the guest', guestTrue, 'the fork/exec alone under this emulation'],
    ];
    for (const [id, what, v, note] of parts) {
      figure(id, v, 'ms', what);
      rows.push({ what: `${what} (median of ${N})`, value: fmtMs(v), note });
    }
    // the guest's own cipher speed (OpenSSL, as sshd uses it), under this accelerator
    for (const [c, evp] of [['aes128-gcm@openssh.com', 'aes-128-gcm'], ['chacha20-poly1305@openssh.com', 'chacha20-poly1305']] as const) {
      const r = await vm.exec(['openssl', 'speed', '-seconds', '1', '-bytes', '32768', '-evp', evp], { timeoutMs: 60_000 }).catch(() => undefined);
      const m = new RegExp(`^${evp}\\s+([\\d.]+)k`, 'im').exec(r?.stdout.toString() ?? '');
      if (!m) continue;
      const v = (Number(m[1]) * 1000) / MIB;
      figure(`transport.guest.openssl.${idOf(c)}.mibps`, v, 'MiB/s', `${evp} in the guest's OpenSSL (32 KiB blocks)`);
      rows.push({ what: `guest OpenSSL ${evp}, 32 KiB blocks`, value: `${v.toFixed(1)} MiB/s` });
    }
    for (const c of CIPHERS) {
      const t = await channelThroughput(vm, c);
      if (!t) {
        rows.push({ what: `SSH channel, ${c}`, value: 'not offered by the guest' });
        continue;
      }
      figure(`transport.ssh.${idOf(c)}.down.mibps`, t.down, 'MiB/s', `SSH channel host → guest, ${c}`);
      figure(`transport.ssh.${idOf(c)}.up.mibps`, t.up, 'MiB/s', `SSH channel guest → host, ${c}`);
      rows.push({ what: `SSH channel, ${t.negotiated}`, value: `${t.down.toFixed(1)} MiB/s host → guest`, note: `${t.up.toFixed(1)} MiB/s guest → host` });
    }
    await vm.stop();
  } finally {
    await client.dispose();
    await rm(tmp, { recursive: true, force: true });
  }
  printTable(`Transport: where a command's time goes (${new Date().toISOString()})`, rows);
  saveFigures();
}

if (process.argv[2] === '--loopback') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { bindingAvailable } = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
  loopback(process.argv[3]!).then(
    (v) => console.log(`${bindingAvailable ? 'binding' : 'no-binding'}\n${v}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
