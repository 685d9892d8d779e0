// Issue 2 figures: cold start vs bare kernel boot, command transport overhead, small-file reads
// through the workspace share vs tmpfs, idle memory, accelerator. Prints figures and ratios.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestVm } from '../../extension/guest/guestVm';
import { VmHostClient } from '../../extension/guest/vmHostClient';
import { qemuArgv } from '../../vm-host/drivers/qemu';
import { ensureImage } from '../../vm-host/image/builder';
import { defaultCacheDir } from '../../vm-host/image/cacheDir';
import { hostArch } from '../../vm-host/image/recipe';
import { processStats } from '../../vm-host/stats';
import { freePort } from '../../vm-host/vm';
import { benchAccelerator, figure, fmtBytes, fmtMs, median, printTable, saveFigures, setAccelerator, wants, type Row } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const HELPER = path.join(ROOT, 'dist', 'vm-host.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const resources = { cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 4 };

async function bareBoot(accelerator: 'tcg' | 'kvm' | 'hvf' | 'whpx', tmp: string): Promise<number> {
  const image = await ensureImage({ cacheDir: defaultCacheDir(), sources: { imageDir: path.join(ROOT, 'vm-host', 'image'), guestDir: path.join(ROOT, 'vm-host', 'guest') }, arch: hostArch() });
  const disk = path.join(tmp, `bare-${Date.now()}.qcow2`);
  await new Promise<void>((res, rej) => spawn('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '1G']).on('close', (c) => (c === 0 ? res() : rej(new Error('qemu-img')))));
  const argv = qemuArgv({
    qemuBinary: image.qemuBinary, accelerator, cpus: resources.cpus, memoryMiB: resources.memoryMiB, kernel: image.kernel, kernelFormat: image.kernelFormat,
    initrd: image.initrd, rootfs: image.rootfs, sessionDisk: disk, workspace: tmp, sshPort: await freePort(), fwCfgFiles: {}, extraCmdline: 'cowork.bare',
  });
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const q = spawn(image.qemuBinary, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let at = 0;
    q.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (!at && out.includes('COWORK-BARE-INIT')) {
        at = performance.now() - t0;
        q.kill('SIGKILL');
      }
    });
    q.on('close', () => (at ? resolve(at) : reject(new Error(`bare boot never reached init:\n${out.slice(-500)}`))));
  });
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cowork-bench-'));
  const ws = path.join(tmp, 'ws');
  await mkdir(ws);
  const rows: Row[] = [];
  try {
    // Cold start: helper process start → first successful exec, a fresh session disk each time.
    const cold: number[] = [];
    let accelerator = 'tcg';
    const bootMs: number[] = [];
    // Where a cold start goes: ms from the helper's start to each boot step the guest reports
    // (vm.progress: "kernel" when QEMU starts, then init's COWORK-STEP names), to ready, to the first exec.
    const phases = new Map<string, number[]>();
    const at = (name: string, ms: number): void => void phases.set(name, [...(phases.get(name) ?? []), ms]);
    for (let i = 0; i < (wants('boot.') ? RUNS : 0); i++) {
      const t0 = performance.now();
      const client = new VmHostClient({ helperPath: HELPER });
      const seen = new Set<string>();
      client.onEvent((ev) => {
        if (ev.event !== 'vm.progress' || seen.has(ev.step)) return;
        seen.add(ev.step);
        at(`guest step ${ev.step}`, performance.now() - t0);
      });
      await client.hello();
      at('helper answers', performance.now() - t0);
      const info = await client.request('vm.start', { vmId: `bench-${i}`, workspace: ws, sessionDisk: path.join(tmp, `cold-${i}.qcow2`), accelerator: benchAccelerator(), ...resources });
      at('VM ready (sshd listening)', performance.now() - t0);
      const vm = await GuestVm.attach(client, info);
      at('ssh connected, guest agent started', performance.now() - t0);
      const r = await vm.exec(['/bin/true']);
      if (r.code !== 0) throw new Error('true failed');
      cold.push(performance.now() - t0);
      bootMs.push(vm.info.bootMs);
      accelerator = vm.info.accelerator;
      await vm.stop();
      await client.dispose();
    }
    const bare: number[] = [];
    for (let i = 0; i < (wants('boot.') ? RUNS : 0); i++) bare.push(await bareBoot(accelerator as 'tcg', tmp));
    if (wants('boot.')) {
      setAccelerator(accelerator);
      figure('boot.cold.ms', median(cold), 'ms', 'cold start: helper start → first exec');
      figure('boot.ready.ms', median(bootMs), 'ms', 'cold start: VM boot to ready');
      figure('boot.bare.ms', median(bare), 'ms', 'bare kernel boot to its init');
      figure('boot.cold.ratio', median(cold) / median(bare), 'x', 'cold start vs bare kernel boot', 1.5);
      rows.push({ what: 'accelerator', value: accelerator });
      rows.push({ what: 'cold start (helper → first exec)', value: fmtMs(median(cold)), note: `runs: ${cold.map((x) => fmtMs(x)).join(', ')}` });
      rows.push({ what: '  of which VM boot to ready', value: fmtMs(median(bootMs)) });
      rows.push({ what: 'bare kernel boot to its init', value: fmtMs(median(bare)), note: `runs: ${bare.map((x) => fmtMs(x)).join(', ')}` });
      rows.push({ what: 'ratio cold / bare', value: `${(median(cold) / median(bare)).toFixed(2)}×`, note: 'goal ≤ 1.5× (issue 14)' });
      rows.push({ what: 'where the cold start goes (median ms since the helper started)', value: '' });
      for (const [name, ms] of [...phases].sort((a, b) => median(a[1]) - median(b[1]))) rows.push({ what: `  ${name}`, value: fmtMs(median(ms)) });
      rows.push({ what: '  first exec done', value: fmtMs(median(cold)) });
    }

    // One VM for the steady-state figures.
    const tree = path.join(ws, 'tree');
    for (let d = 0; d < 50; d++) {
      await mkdir(path.join(tree, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) await writeFile(path.join(tree, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(40));
    }
    const client = new VmHostClient({ helperPath: HELPER });
    if (!wants('transport.') && !wants('share.') && !wants('memory.')) {
      printTable(`VM (${RUNS} runs, ${new Date().toISOString()})`, rows);
      saveFigures();
      return;
    }
    const vm = await GuestVm.start(client, { vmId: 'bench-steady', workspace: ws, sessionDisk: path.join(tmp, 'steady.qcow2'), accelerator: benchAccelerator(), ...resources });
    try {
      const N = 100;
      await vm.exec(['/bin/true']);
      const per: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < N; i++) {
        const s = performance.now();
        await vm.exec(['/bin/true']);
        per.push(performance.now() - s);
      }
      const hostTotal = performance.now() - t0;
      const inGuest = await vm.sh(`s=$(date +%s%N); for i in $(seq ${N}); do /bin/true; done; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`);
      const guestTotal = Number(inGuest.stdout.toString().trim()) / 1000;
      rows.push({ what: `${N}× true via the guest agent`, value: fmtMs(hostTotal), note: `median ${fmtMs(median(per))} per command` });
      rows.push({ what: `${N}× true in a loop inside the guest`, value: fmtMs(guestTotal) });
      rows.push({ what: 'ratio transport / in-guest', value: `${(hostTotal / guestTotal).toFixed(2)}×`, note: 'goal ≤ 1.2×' });
      setAccelerator(vm.info.accelerator);
      figure('transport.loop100.ms', hostTotal, 'ms', `${N}× bare /bin/true through the guest agent`);
      figure('transport.loop100.guest.ms', guestTotal, 'ms', `${N}× /bin/true in a loop inside the guest`);
      figure('transport.loop.ratio', hostTotal / guestTotal, 'x', `${N} bare commands through the agent vs the same loop in the guest`, 1.2);

      // the idle memory figure is taken after this read (issue 14): --only memory. reads too
      if (wants('share.') || wants('memory.')) {
        const readTree = async (dir: string): Promise<number> => {
          const r = await vm.sh(`sync; echo 3 > /proc/sys/vm/drop_caches; s=$(date +%s%N); find ${dir} -type f -print0 | xargs -0 cat | wc -c >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`);
          return Number(r.stdout.toString().trim()) / 1000;
        };
        await vm.sh('cp -r /workspace/tree /tmp/tree');
        const share = await readTree('/workspace/tree');
        const tmpfs = await readTree('/tmp/tree');
        rows.push({ what: '5,000 files via /workspace (9p)', value: fmtMs(share) });
        rows.push({ what: '5,000 files from guest tmpfs', value: fmtMs(tmpfs) });
        rows.push({ what: 'ratio share / tmpfs', value: `${(share / tmpfs).toFixed(1)}×`, note: 'goal ≤ 3×' });
        figure('share.5000files.ms', share, 'ms', 'read 5,000 small files via /workspace');
        figure('share.tmpfs.5000files.ms', tmpfs, 'ms', 'read the same 5,000 files from guest tmpfs');
        figure('share.5000files.ratio', share / tmpfs, 'x', '5,000 files via the workspace share vs guest tmpfs', 3);
        await vm.sh('cat /workspace/tree/d0/f0.txt > /dev/null');
        await writeFile(path.join(tree, 'd0', 'f0.txt'), 'changed on the host\n');
        const fresh = (await vm.sh('cat /workspace/tree/d0/f0.txt')).stdout.toString() === 'changed on the host\n';
        rows.push({ what: 'host edit visible in the guest at once', value: fresh ? 'yes' : 'NO (stale)' });
        figure('share.fresh.bool', fresh ? 1 : 0, 'bool', 'a host edit is visible in the guest at once', 1, 'min');
      }
      if (wants('share.gitstatus')) await gitStatusFigures(vm, ws, rows);

      await new Promise((r) => setTimeout(r, 3000));
      const { vms } = await client.request('vm.list', {});
      const helperStats = await processStats(client.pid!);
      rows.push({ what: 'idle RSS: QEMU', value: fmtBytes(vms[0]?.rssBytes) });
      rows.push({ what: 'idle RSS: vm-host helper', value: fmtBytes(helperStats.rssBytes) });
      if (vms[0]?.rssBytes !== undefined) figure('memory.qemu.idle.mib', vms[0].rssBytes / 1048576, 'MiB', 'idle RSS of QEMU after the share read');
      if (helperStats.rssBytes !== undefined) figure('memory.helper.idle.mib', helperStats.rssBytes / 1048576, 'MiB', 'idle RSS of the vm-host helper');
    } finally {
      await vm.stop();
      await client.dispose();
    }
    printTable(`VM and transport (${RUNS} runs, ${os.cpus().length} host cpus, ${new Date().toISOString()})`, rows);
    saveFigures();
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Issue 14's `git status` figure: a 20,000-file repository committed on the host, `git status` in
 * /workspace (the 9p share under the overlay) vs the same repository copied onto the guest's ext4
 * session disk. Each side gets one untimed status first (it refreshes the index's stat data, which
 * the copy changed), then the median of three runs with the guest's caches dropped before each.
 */
async function gitStatusFigures(vm: GuestVm, ws: string, rows: Row[]): Promise<void> {
  const FILES = 20_000;
  const repo = path.join(ws, 'repo');
  for (let d = 0; d < FILES / 100; d++) {
    await mkdir(path.join(repo, `src${d}`), { recursive: true });
    await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(path.join(repo, `src${d}`, `m${f}.ts`), `export const v${f} = ${d};\n`)));
  }
  const git = (args: string[]): Promise<void> =>
    new Promise((res, rej) => spawn('git', ['-C', repo, ...args], { stdio: 'ignore' }).on('close', (c) => (c === 0 ? res() : rej(new Error(`git ${args[0]} failed (${c})`)))));
  await git(['init', '-q']);
  await git(['add', '-A']);
  await git(['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-q', '-m', 'bench']);
  await vm.sh('rm -rf /session/gitbench && cp -a /workspace/repo /session/gitbench');
  const status = async (dir: string): Promise<number> => {
    const r = await vm.sh(`sync; echo 3 > /proc/sys/vm/drop_caches; s=$(date +%s%N); git -c safe.directory='*' -C ${dir} status --porcelain | wc -l >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`);
    return Number(r.stdout.toString().trim()) / 1000;
  };
  const timed = async (dir: string): Promise<number> => {
    await vm.sh(`git -c safe.directory='*' -C ${dir} status --porcelain >/dev/null`);
    const runs = [await status(dir), await status(dir), await status(dir)];
    return median(runs);
  };
  const share = await timed('/workspace/repo');
  const ext4 = await timed('/session/gitbench');
  await vm.sh('rm -rf /session/gitbench');
  rows.push({ what: `git status, ${FILES.toLocaleString('en')} files via /workspace (9p)`, value: fmtMs(share) });
  rows.push({ what: 'git status, the same repository on guest ext4', value: fmtMs(ext4) });
  rows.push({ what: 'ratio share / ext4', value: `${(share / ext4).toFixed(1)}×`, note: 'goal ≤ 3× (issue 14)' });
  figure('share.gitstatus.ms', share, 'ms', `git status of a ${FILES}-file repository in /workspace (caches dropped)`);
  figure('share.gitstatus.ext4.ms', ext4, 'ms', 'the same git status on the guest\'s ext4 session disk');
  figure('share.gitstatus.ratio', share / ext4, 'x', 'git status in /workspace vs guest ext4', 3);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
