// A tiny process that outlives the helper only long enough to kill what the helper started.
// The helper can be SIGKILLed (no handler runs), so every QEMU it starts is registered here; when
// the helper dies, this process sees EOF on its stdin and SIGKILLs every registered pid and removes
// every registered runtime directory. It runs on the same Node the helper runs on, on every OS.
import { spawn, type ChildProcess } from 'node:child_process';

const WATCHDOG_SOURCE = String.raw`
const fs = require('fs');
const pids = new Set(); const dirs = new Set();
let buf = '';
function cleanup() {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch {} }
  for (const d of dirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch {} }
  process.exit(0);
}
process.stdin.on('data', (c) => {
  buf += c; let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const [op, arg] = buf.slice(0, i).split(' '); buf = buf.slice(i + 1);
    if (op === 'guard') pids.add(Number(arg)); else if (op === 'release') pids.delete(Number(arg));
    else if (op === 'dir') dirs.add(arg); else if (op === 'undir') dirs.delete(arg);
  }
});
process.stdin.on('end', cleanup); process.stdin.on('error', cleanup);
process.on('SIGTERM', cleanup); process.on('SIGINT', cleanup); process.on('SIGHUP', cleanup);
`;

export class Watchdog {
  private readonly child: ChildProcess;

  constructor() {
    this.child = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    this.child.stdin?.on('error', () => undefined);
    this.child.unref();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  guard(pid: number): void {
    this.send(`guard ${pid}`);
  }
  release(pid: number): void {
    this.send(`release ${pid}`);
  }
  /** Directory names must not contain spaces or newlines (ours never do). */
  removeOnExit(dir: string): void {
    this.send(`dir ${dir}`);
  }
  keepDir(dir: string): void {
    this.send(`undir ${dir}`);
  }

  /** Normal exit: everything was cleaned up by the helper, so the watchdog just leaves. */
  close(): void {
    this.child.stdin?.end();
  }

  private send(line: string): void {
    this.child.stdin?.write(line + '\n');
  }
}
