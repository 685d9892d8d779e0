// Entry point of the vm-host helper (dist/vm-host.js).
//   node dist/vm-host.js                   serve the JSON-lines protocol on stdio (the extension's way)
//   node dist/vm-host.js --build-image [--force]   build/verify the guest image, progress on stderr
//   node dist/vm-host.js --doctor [--reprobe] [--json]   check the prerequisites, one ✓/✗ line each;
//                                          exit code 1 when a required one fails (vm-host/doctor.ts)
// Environment: COWORK_CACHE_DIR (image cache, verdicts, boot times), COWORK_QEMU_BINARY (the QEMU
// program), COWORK_TEST_FAKE_KVM=1 (tests only: pretend /dev/kvm is usable, see drivers/accelerator.ts).
// It exits when its stdin closes (its parent is gone) or on SIGTERM/SIGINT/SIGHUP, and stops every
// VM before it does; if it is SIGKILLed, its watchdog kills the VMs instead.
import * as path from 'node:path';
import * as readline from 'node:readline';
import { doctorExitCode, formatDoctorLine } from './doctor';
import { ensureImage } from './image/builder';
import { defaultCacheDir } from './image/cacheDir';
import { hostArch, type RecipeSources } from './image/recipe';
import { VmHostServer } from './server';

const root = path.resolve(__dirname, '..');
const sources: RecipeSources = { imageDir: path.join(root, 'vm-host', 'image'), guestDir: path.join(root, 'vm-host', 'guest') };

async function buildImageCli(force: boolean): Promise<void> {
  const t0 = Date.now();
  let lastMessage = '';
  const image = await ensureImage({
    cacheDir: defaultCacheDir(),
    sources,
    arch: hostArch(),
    force,
    onProgress: (p) => {
      if (p.message === lastMessage) return;
      lastMessage = p.message;
      process.stderr.write(`[${String(Math.round(p.fraction * 100)).padStart(3)}%] ${p.message}\n`);
    },
    onLog: process.env.COWORK_VERBOSE ? (l) => process.stderr.write(`${l}\n`) : undefined,
  });
  process.stderr.write(`Guest image ${image.key} (kernel ${image.kernelVersion}) ${image.built ? 'built' : 'found in cache'} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(image) + '\n');
}

function serve(): void {
  const send = (obj: object): void => {
    process.stdout.write(JSON.stringify(obj) + '\n');
  };
  const server = new VmHostServer({ send, sources });
  const exit = (): void => {
    server.shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (line.trim()) void server.handleLine(line);
  });
  rl.on('close', exit);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, exit);
  process.stdout.on('error', exit); // parent closed our stdout: it is gone
}

async function doctorCli(): Promise<number> {
  const server = new VmHostServer({ send: () => undefined, sources });
  try {
    const { lines } = await server.doctor({ reprobe: process.argv.includes('--reprobe') });
    if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(lines) + '\n');
    else for (const l of lines) process.stdout.write(formatDoctorLine(l) + '\n');
    return doctorExitCode(lines);
  } finally {
    await server.shutdown();
  }
}

if (process.argv.includes('--doctor')) {
  doctorCli().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
} else if (process.argv.includes('--build-image')) {
  buildImageCli(process.argv.includes('--force')).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
} else {
  serve();
}
