// Issue 5 figures: change-set computation for 100 changed files in workspaces of 5,000 and 50,000
// files (it must not grow with the workspace), and accept-all throughput for 1,000 small files.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyChange } from '../../extension/changes/apply';
import { readChangeSet } from '../../extension/changes/changeSet';
import { prefetch } from '../../extension/changes/readBatch';
import { GuestVm } from '../../extension/guest/guestVm';
import { VmHostClient } from '../../extension/guest/vmHostClient';
import { benchAccelerator, figure, fmtMs, median, printTable, saveFigures, setAccelerator, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');

async function workspaceOf(dir: string, files: number): Promise<void> {
  for (let d = 0; d < files / 100; d++) {
    await mkdir(path.join(dir, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(path.join(dir, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`)));
  }
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-review-'));
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  const rows: Row[] = [];
  try {
    for (const size of [5_000, 50_000]) {
      const ws = path.join(tmp, `ws${size}`);
      await workspaceOf(ws, size);
      const vm = await GuestVm.start(client, { vmId: `bench-review-${size}`, workspace: ws, sessionDisk: path.join(tmp, `r${size}.qcow2`), accelerator: benchAccelerator(), cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 2 });
      await vm.sh('cd /workspace && for d in $(seq 0 9); do for f in $(seq 0 9); do echo changed >> d$d/f$f.txt; done; done');
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const cs = await readChangeSet(vm);
        times.push(performance.now() - t0);
        if (cs.changes.length !== 100) throw new Error(`expected 100 changes, got ${cs.changes.length}`);
      }
      setAccelerator(vm.info.accelerator);
      figure(`review.changeset100.${size}files.ms`, median(times), 'ms', `change set of 100 changes in ${size} files`, 100);
      rows.push({ what: `change set, 100 changes in ${size.toLocaleString('en-US')} files`, value: fmtMs(median(times)), note: 'goal ≤ 100 ms, flat in workspace size' });
      if (size === 5_000) {
        await vm.sh('mkdir -p /workspace/many && cd /workspace/many && for i in $(seq 1 1000); do echo "small $i" > f$i.txt; done');
        const cs = await readChangeSet(vm);
        const many = cs.changes.filter((c) => c.display.startsWith('many/'));
        const t0 = performance.now();
        const cache = await prefetch(vm, many);
        for (const c of many) {
          const r = await applyChange(c, { workspace: ws, since: Date.now(), readProposed: (rel) => Promise.resolve(cache.get(rel.toString('base64'))!) });
          if (r.outcome !== 'applied') throw new Error(`${c.display}: ${r.outcome}`);
        }
        const ms = performance.now() - t0;
        figure('review.acceptall.1000files.ms', ms, 'ms', `accept all, ${many.length} small files`);
        rows.push({ what: `accept all, ${many.length} small files`, value: fmtMs(ms), note: `${Math.round(many.length / (ms / 1000))} files/s` });
      }
      await vm.stop();
    }
  } finally {
    await client.dispose();
    await rm(tmp, { recursive: true, force: true });
  }
  printTable(`Review (${new Date().toISOString()})`, rows);
  saveFigures();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
