// The demo's VM part: boot the guest on the sample workspace and run a command in it, the way the
// extension does (the bundled helper, the guest module over SSH).
import { cp, mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestVm } from '../../extension/guest/guestVm';
import { VmHostClient } from '../../extension/guest/vmHostClient';

const ROOT = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'cowork-demo-'));
  const ws = path.join(work, 'workspace');
  await cp(path.join(ROOT, 'demo', 'workspace'), ws, { recursive: true });
  const client = new VmHostClient({ helperPath: path.join(ROOT, 'dist', 'vm-host.js') });
  client.onEvent((ev) => {
    if (ev.event === 'vm.state') console.log(`[vm] ${ev.state}${ev.detail ? `: ${ev.detail}` : ''}`);
    if (ev.event === 'log' && ev.level !== 'debug' && ev.level !== 'trace') console.log(`[vm-host] ${ev.message}`);
  });
  console.log(`Booting the guest on ${ws} …`);
  const vm = await GuestVm.start(client, { vmId: 'demo', workspace: ws, sessionDisk: path.join(work, 'demo.qcow2'), accelerator: 'auto', cpus: Math.min(2, os.cpus().length), memoryMiB: 1024, diskGiB: 4 });
  console.log(`VM ready in ${(vm.info.bootMs / 1000).toFixed(1)} s with ${vm.info.accelerator}.\n`);
  const script = 'uname -sr; echo; ls -l /workspace; echo; python3 /workspace/slugify.py; echo "agent edit" > /workspace/NOTES.md; echo; echo "overlay changes:"; ls /session/upper';
  console.log(`$ ${script}\n`);
  const r = await vm.sh(script, { cwd: '/workspace', onStdout: (c) => process.stdout.write(c), onStderr: (c) => process.stderr.write(c) });
  console.log(`\n[exit ${r.code ?? r.signal}] — ${ws}/NOTES.md on the host: ${await import('node:fs').then((fs) => (fs.existsSync(path.join(ws, 'NOTES.md')) ? 'written (unexpected!)' : 'untouched, as review mode promises'))}`);
  await vm.stop();
  await client.dispose();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
