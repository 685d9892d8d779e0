// Issue 3 and 13 figures: the cost of the sandbox per command against a bare exec in the same
// guest, 100 sandboxed commands through the agent against the same loop inside the sandbox, and
// egress proxy throughput (plain HTTP through the proxy, and HTTPS through a CONNECT tunnel)
// against the same download directly on the host. Each ratio is measured side by side in one run.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryAudit } from '../../extension/egress/audit';
import { EGRESS_GUEST, egressSocketPaths } from '../../extension/egress/hostSockets';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy } from '../../extension/egress/proxy';
import { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import { VmHostClient } from '../../extension/guest/vmHostClient';
import { benchAccelerator, figure, fmtMs, median, printTable, saveFigures, setAccelerator, wants, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const N = Number(process.env.BENCH_SANDBOX_RUNS ?? 20);
const LOOP = 100;
const SIZE = 50 * 1024 * 1024;
const mibps = (ms: number): number => SIZE / 1048576 / (ms / 1000);

/** A throwaway self-signed certificate for big.test (openssl on the host), or undefined without openssl. */
function selfSigned(dir: string): { key: Buffer; cert: Buffer } | undefined {
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=big.test', '-addext', 'subjectAltName=DNS:big.test', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    return { key: readFileSync(path.join(dir, 'k.pem')), cert: readFileSync(path.join(dir, 'c.pem')) };
  } catch {
    return undefined;
  }
}

function download(get: typeof http.get, url: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    let n = 0;
    get(url, { rejectUnauthorized: false } as http.RequestOptions, (res) =>
      res
        .on('data', (c: Buffer) => (n += c.length))
        .on('end', () => (n === SIZE ? resolve(performance.now() - t) : reject(new Error(`direct download: ${n} bytes`)))),
    ).on('error', reject);
  });
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-sb-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  const blob = Buffer.alloc(SIZE, 7);
  const server = http.createServer((_req, res) => res.end(blob));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const tls = selfSigned(tmp);
  const tlsServer = tls ? https.createServer(tls, (_req, res) => res.end(blob)) : undefined;
  if (tlsServer) await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  const tlsPort = tlsServer ? (tlsServer.address() as net.AddressInfo).port : 0;
  const proxy = new EgressProxy({
    task: 'bench',
    policy: new EgressPolicy({ allowed: ['big.test', `big.test:${port}`, `big.test:${tlsPort}`, `127.0.0.1:${port}`, `127.0.0.1:${tlsPort}`], denied: [] }),
    audit: new MemoryAudit(),
    resolver: () => Promise.resolve(['127.0.0.1']),
  });
  await proxy.listenOn(egressSocketPaths('bench-sandbox'));
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  const rows: Row[] = [];
  try {
    const vm = await GuestVm.start(client, { vmId: 'bench-sandbox', workspace: ws, sessionDisk: path.join(tmp, 's.qcow2'), accelerator: benchAccelerator(), cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 2 });
    setAccelerator(vm.info.accelerator);
    const sb = GuestSandbox.for(vm);
    await sb.run('true');

    if (wants('cmd.')) {
      const bare: number[] = [];
      const boxed: number[] = [];
      const argv: number[] = [];
      for (let i = 0; i < N; i++) {
        let t = performance.now();
        await vm.exec(['/bin/true']);
        bare.push(performance.now() - t);
        t = performance.now();
        const r = await sb.run('true');
        if (r.code !== 0) throw new Error(`sandboxed true failed: ${r.stderr.toString()}`);
        boxed.push(performance.now() - t);
        // the same program as the bare exec, without bash's own start: what the sandbox itself adds
        t = performance.now();
        const a = await sb.runArgv(['/bin/true']);
        if (a.code !== 0) throw new Error(`sandboxed /bin/true failed: ${a.stderr.toString()}`);
        argv.push(performance.now() - t);
      }
      const ratio = median(boxed) / median(bare);
      figure('cmd.bare.true.ms', median(bare), 'ms', `bare exec of true through the agent (median of ${N})`);
      figure('cmd.sandboxed.true.ms', median(boxed), 'ms', `sandboxed true through the agent (median of ${N})`);
      figure('cmd.sandboxed.overhead.ms', median(boxed) - median(bare), 'ms', 'sandbox overhead per command');
      figure('cmd.sandboxed.ratio', ratio, 'x', 'sandboxed true vs a bare exec, both through the agent', 1.5);
      rows.push({ what: `bare exec of true (median of ${N})`, value: fmtMs(median(bare)) });
      rows.push({ what: 'sandboxed true', value: fmtMs(median(boxed)) });
      rows.push({ what: 'sandbox overhead per command', value: fmtMs(median(boxed) - median(bare)), note: `${ratio.toFixed(2)}× a bare exec; goal ≤ 1.5×` });
      figure('cmd.sandboxed.argv.true.ms', median(argv), 'ms', `sandboxed /bin/true without bash (runArgv), through the agent (median of ${N})`);
      figure('cmd.sandboxed.argv.ratio', median(argv) / median(bare), 'x', 'sandboxed /bin/true without bash vs the same bare exec: the sandbox alone');
      rows.push({ what: '  sandboxed /bin/true, no bash (runArgv)', value: fmtMs(median(argv)), note: `${(median(argv) / median(bare)).toFixed(2)}× a bare exec: the rest of \`true\` is bash's own start` });

      // 100 sandboxed commands through the agent vs the same loop inside the sandbox
      const t = performance.now();
      for (let i = 0; i < LOOP; i++) {
        const r = await sb.run('true');
        if (r.code !== 0) throw new Error('sandboxed true failed');
      }
      const host = performance.now() - t;
      const inside = await sb.run(`s=$EPOCHREALTIME; for i in $(seq ${LOOP}); do /bin/true; done; e=$EPOCHREALTIME; echo "$s $e"`);
      const [s, e] = inside.stdout.toString().trim().split(' ').map(Number) as [number, number];
      const loopMs = (e - s) * 1000;
      figure('cmd.loop100.ms', host, 'ms', `${LOOP} sandboxed true through the agent, one after another`);
      figure('cmd.loop100.insandbox.ms', loopMs, 'ms', `the same ${LOOP} /bin/true in a loop inside the sandbox`);
      figure('cmd.loop100.ratio', host / loopMs, 'x', `${LOOP} sandboxed commands through the agent vs the same loop inside the sandbox`, 1.2);
      rows.push({ what: `${LOOP}× sandboxed true through the agent`, value: fmtMs(host), note: `${fmtMs(host / LOOP)} each` });
      rows.push({ what: `${LOOP}× /bin/true in a loop inside the sandbox`, value: fmtMs(loopMs) });
      rows.push({ what: 'ratio agent / in-sandbox loop', value: `${(host / loopMs).toFixed(2)}×`, note: 'goal ≤ 1.2×' });
      // the same 100 without a bash per command (runArgv of /bin/true, like the loop inside)
      const ta = performance.now();
      for (let i = 0; i < LOOP; i++) {
        const r = await sb.runArgv(['/bin/true']);
        if (r.code !== 0) throw new Error('sandboxed /bin/true failed');
      }
      const hostArgv = performance.now() - ta;
      figure('cmd.loop100.argv.ratio', hostArgv / loopMs, 'x', `${LOOP} sandboxed /bin/true through the agent without bash (runArgv) vs the same loop inside the sandbox`);
      rows.push({ what: `${LOOP}× sandboxed /bin/true, no bash (runArgv)`, value: fmtMs(hostArgv), note: `${(hostArgv / loopMs).toFixed(2)}× the loop inside` });
    }

    if (wants('proxy.')) {
      const direct = await download(http.get, `http://127.0.0.1:${port}/`);
      let t = performance.now();
      const r = await sb.run(`curl -sS -o /dev/null -w '%{size_download}' http://big.test:${port}/`, { timeoutMs: 300_000 });
      const proxied = performance.now() - t;
      if (Number(r.stdout.toString()) !== SIZE) throw new Error(`proxied download incomplete: ${r.stdout.toString()} ${r.stderr.toString()}`);
      figure('proxy.50mib.direct.mibps', mibps(direct), 'MiB/s', '50 MiB over plain HTTP directly on the host');
      figure('proxy.50mib.proxied.mibps', mibps(proxied), 'MiB/s', '50 MiB over plain HTTP from the sandbox through the egress proxy');
      figure('proxy.50mib.ratio', proxied / direct, 'x', '50 MiB through the proxy vs directly on the host (time)', 3);
      rows.push({ what: '50 MiB direct on the host', value: fmtMs(direct), note: `${mibps(direct).toFixed(1)} MiB/s` });
      rows.push({ what: '50 MiB from the sandbox via the proxy', value: fmtMs(proxied), note: `${mibps(proxied).toFixed(1)} MiB/s` });
      rows.push({ what: 'ratio proxied / direct', value: `${(proxied / direct).toFixed(1)}×`, note: 'goal ≤ 3×' });
      // Each hop alone: the same request by a guest process outside the sandbox (no curl, no socat
      // in the sandbox) on the egress socket (egress-relay, then QEMU), and straight to QEMU's
      // forwarding address (no relay in the guest at all).
      const rawGet = async (connect: string, what: string): Promise<number> => {
        const py = [
          'import socket',
          connect,
          `s.sendall(b'GET http://big.test:${port}/ HTTP/1.1\\r\\nHost: big.test:${port}\\r\\nConnection: close\\r\\n\\r\\n')`,
          'b = bytearray(1 << 20)',
          'n = 0',
          'while True:',
          '    k = s.recv_into(b)',
          '    if not k: break',
          '    n += k',
          'print(n)',
        ].join('\n');
        const t0 = performance.now();
        const raw = await vm.exec(['python3', '-c', py], { timeoutMs: 300_000 });
        const ms = performance.now() - t0;
        if (Number(raw.stdout.toString()) < SIZE) throw new Error(`${what} download incomplete: ${raw.stdout.toString()} ${raw.stderr.toString()}`);
        return ms;
      };
      const socketMs = await rawGet("s = socket.socket(socket.AF_UNIX); s.connect('/run/cowork/egress/http.sock')", 'egress socket');
      figure('proxy.50mib.socket.mibps', mibps(socketMs), 'MiB/s', '50 MiB read from the egress socket by a guest process outside the sandbox (no sandbox relay)');
      rows.push({ what: '  the same on the egress socket, no sandbox relay', value: fmtMs(socketMs), note: `${mibps(socketMs).toFixed(1)} MiB/s` });
      const fwdMs = await rawGet(`s = socket.create_connection(('${EGRESS_GUEST.address}', ${EGRESS_GUEST.httpPort}))`, 'forwarding address');
      figure('proxy.50mib.guestfwd.mibps', mibps(fwdMs), 'MiB/s', "50 MiB read straight from QEMU's forwarding address by a guest process (no relay in the guest)");
      rows.push({ what: "  the same from QEMU's forwarding address, no guest relay", value: fmtMs(fwdMs), note: `${mibps(fwdMs).toFixed(1)} MiB/s` });
      if (tlsServer) {
        const directTls = await download(https.get, `https://127.0.0.1:${tlsPort}/`);
        t = performance.now();
        const rt = await sb.run(`curl -sSk -o /dev/null -w '%{size_download}' https://big.test:${tlsPort}/`, { timeoutMs: 300_000 });
        const tunneled = performance.now() - t;
        if (Number(rt.stdout.toString()) !== SIZE) throw new Error(`tunneled download incomplete: ${rt.stdout.toString()} ${rt.stderr.toString()}`);
        figure('proxy.50mib.tls.direct.mibps', mibps(directTls), 'MiB/s', '50 MiB over HTTPS directly on the host');
        figure('proxy.50mib.tls.tunnel.mibps', mibps(tunneled), 'MiB/s', '50 MiB over HTTPS from the sandbox through a CONNECT tunnel');
        figure('proxy.50mib.tls.ratio', tunneled / directTls, 'x', '50 MiB HTTPS through a CONNECT tunnel vs directly on the host (time)', 3);
        rows.push({ what: '50 MiB HTTPS direct on the host', value: fmtMs(directTls), note: `${mibps(directTls).toFixed(1)} MiB/s` });
        rows.push({ what: '50 MiB HTTPS via a CONNECT tunnel', value: fmtMs(tunneled), note: `${mibps(tunneled).toFixed(1)} MiB/s` });
        rows.push({ what: 'ratio tunneled / direct', value: `${(tunneled / directTls).toFixed(1)}×` });
      }
    }
    await vm.stop();
  } finally {
    if (rows.length) printTable(`Sandbox and egress (${new Date().toISOString()})`, rows);
    saveFigures();
    await client.dispose();
    await proxy.close();
    server.close();
    tlsServer?.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
