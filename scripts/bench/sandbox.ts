// Issue 3 figures: the cost of the sandbox per command (bwrap + seccomp + cgroup + relays) against
// a bare exec in the same guest, and egress proxy throughput against a direct download on the host.
import * as http from 'node:http';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryAudit } from '../../extension/egress/audit';
import { bridgeEgress } from '../../extension/egress/guestBridge';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy } from '../../extension/egress/proxy';
import { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import { VmHostClient } from '../../extension/guest/vmHostClient';
import { fmtMs, median, printTable, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const N = Number(process.env.BENCH_SANDBOX_RUNS ?? 20);
const SIZE = 50 * 1024 * 1024;

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-sb-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  const blob = Buffer.alloc(SIZE, 7);
  const server = http.createServer((_req, res) => res.end(blob));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const proxy = new EgressProxy({
    task: 'bench',
    policy: new EgressPolicy({ allowed: ['big.test', `big.test:${port}`, `127.0.0.1:${port}`], denied: [] }),
    audit: new MemoryAudit(),
    resolver: () => Promise.resolve(['127.0.0.1']),
  });
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  const rows: Row[] = [];
  try {
    const vm = await GuestVm.start(client, { vmId: 'bench-sandbox', workspace: ws, sessionDisk: path.join(tmp, 's.qcow2'), accelerator: 'auto', cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 2 });
    await vm.onConnected((c) => bridgeEgress(c, proxy));
    const sb = GuestSandbox.for(vm);
    await sb.run('true');
    const bare: number[] = [];
    const boxed: number[] = [];
    for (let i = 0; i < N; i++) {
      let t = performance.now();
      await vm.exec(['/bin/true']);
      bare.push(performance.now() - t);
      t = performance.now();
      const r = await sb.run('true');
      if (r.code !== 0) throw new Error(`sandboxed true failed: ${r.stderr.toString()}`);
      boxed.push(performance.now() - t);
    }
    rows.push({ what: `bare exec of true (median of ${N})`, value: fmtMs(median(bare)) });
    rows.push({ what: 'sandboxed true (bwrap+seccomp+cgroup+relays)', value: fmtMs(median(boxed)) });
    rows.push({ what: 'sandbox overhead per command', value: fmtMs(median(boxed) - median(bare)), note: `${(median(boxed) / median(bare)).toFixed(1)}× a bare exec` });

    let t = performance.now();
    await new Promise<void>((resolve, reject) => http.get(`http://127.0.0.1:${port}/`, (res) => res.on('data', () => undefined).on('end', resolve)).on('error', reject));
    const direct = performance.now() - t;
    t = performance.now();
    const r = await sb.run(`curl -sS -o /dev/null -w '%{size_download}' http://big.test:${port}/`, { timeoutMs: 300_000 });
    const proxied = performance.now() - t;
    if (Number(r.stdout.toString()) !== SIZE) throw new Error(`proxied download incomplete: ${r.stdout.toString()} ${r.stderr.toString()}`);
    const mbps = (ms: number): string => `${(SIZE / 1048576 / (ms / 1000)).toFixed(1)} MiB/s`;
    rows.push({ what: '50 MiB direct on the host', value: fmtMs(direct), note: mbps(direct) });
    rows.push({ what: '50 MiB from the sandbox via the proxy', value: fmtMs(proxied), note: mbps(proxied) });
    rows.push({ what: 'ratio proxied / direct', value: `${(proxied / direct).toFixed(1)}×` });
    await vm.stop();
  } finally {
    await client.dispose();
    await proxy.close();
    server.close();
    await rm(tmp, { recursive: true, force: true });
  }
  printTable(`Sandbox and egress (${new Date().toISOString()})`, rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
