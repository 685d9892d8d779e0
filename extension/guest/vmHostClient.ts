// Starts the vm-host helper with the extension host's own Node and talks to it over stdio with the
// typed protocol in extension/protocol/vmHost.ts. Closing our end (dispose, or our own death) makes
// the helper stop every VM and exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import {
  PROTOCOL_VERSION,
  Requests,
  ResponseLine,
  VmHostEvent,
  type RequestName,
  type RequestParams,
  type RequestResult,
} from '../protocol/vmHost';
import { GuestError } from './errors';

export interface VmHostClientOptions {
  /** dist/vm-host.js */
  readonly helperPath: string;
  /** extra environment (e.g. COWORK_CACHE_DIR); ELECTRON_RUN_AS_NODE is always set */
  readonly env?: Readonly<Record<string, string>>;
  readonly execPath?: string;
  readonly onLog?: (level: string, message: string) => void;
}

/** Helper error codes after which "Cowork: Check Setup" is the useful next step. */
const SETUP_CODES = new Set(['missing-tool', 'image-build-failed', 'image-corrupt', 'accelerator-unavailable', 'accelerator-unusable', 'boot-failed', 'boot-timeout']);

export class VmHostRequestError extends GuestError {
  constructor(
    readonly helperCode: string,
    message: string,
  ) {
    super('vm-host', message);
  }

  /** true when the host's setup is the likely cause: offer Check Setup with the message */
  get offersCheckSetup(): boolean {
    return SETUP_CODES.has(this.helperCode);
  }
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
  method: RequestName;
}

export class VmHostClient {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private readonly events = new EventEmitter();
  private exitError: Error | undefined;
  private stderrTail = '';
  readonly exited: Promise<void>;

  constructor(private readonly opts: VmHostClientOptions) {
    this.child = spawn(opts.execPath ?? process.execPath, [opts.helperPath], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    this.child.stdin?.on('error', () => undefined);
    let buf = '';
    // setEncoding decodes across chunk boundaries: a multi-byte character split between two reads stays whole
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) this.onLine(line);
      }
    });
    this.child.stderr?.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-4096);
      opts.onLog?.('warn', `[vm-host stderr] ${text.trimEnd()}`);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exitError = new GuestError('vm-host', `The vm-host helper exited (${signal ?? `code ${code}`}). ${this.stderrTail.trim()}`);
        for (const [id, w] of this.waiters) {
          this.waiters.delete(id);
          w.reject(this.exitError);
        }
        this.events.emit('exit', this.exitError);
        resolve();
      });
      this.child.once('error', (err) => {
        this.exitError = new GuestError('vm-host', `Cannot start the vm-host helper: ${err.message}`);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async hello(): Promise<RequestResult<'hello'>> {
    return this.request('hello', { version: PROTOCOL_VERSION });
  }

  request<N extends RequestName>(method: N, params: RequestParams<N>): Promise<RequestResult<N>> {
    if (this.exitError) return Promise.reject(this.exitError);
    const id = this.nextId++;
    return new Promise<RequestResult<N>>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject, method });
      this.child.stdin?.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  onEvent(listener: (ev: VmHostEvent) => void): { dispose(): void } {
    this.events.on('event', listener);
    return { dispose: () => this.events.off('event', listener) };
  }

  onExit(listener: (err: Error) => void): { dispose(): void } {
    this.events.on('exit', listener);
    return { dispose: () => this.events.off('exit', listener) };
  }

  /** Closes the helper's stdin: it stops every VM and exits. Resolves when it has. */
  async dispose(timeoutMs = 10_000): Promise<void> {
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  private onLine(line: string): void {
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      this.opts.onLog?.('warn', `[vm-host] unparseable line: ${line.slice(0, 200)}`);
      return;
    }
    if (obj && typeof obj === 'object' && 'event' in obj) {
      const ev = VmHostEvent.safeParse(obj);
      if (ev.success) this.events.emit('event', ev.data);
      else this.opts.onLog?.('warn', `[vm-host] invalid event: ${ev.error.message}`);
      return;
    }
    const res = ResponseLine.safeParse(obj);
    if (!res.success) {
      this.opts.onLog?.('warn', `[vm-host] invalid response: ${res.error.message}`);
      return;
    }
    const w = this.waiters.get(res.data.id);
    if (!w) return;
    this.waiters.delete(res.data.id);
    if (res.data.ok) {
      const parsed = Requests[w.method][1].safeParse(res.data.result);
      if (parsed.success) w.resolve(parsed.data);
      else w.reject(new VmHostRequestError('bad-response', `The vm-host answered ${w.method} with an invalid result: ${parsed.error.message}`));
    } else {
      w.reject(new VmHostRequestError(res.data.error.code, res.data.error.message));
    }
  }
}
