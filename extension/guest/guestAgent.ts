// Runs commands in the guest through the Cowork agent on one long-lived SSH channel. Measured under
// emulation a new SSH channel costs ~100 ms per command and a command through the agent ~fork+exec
// (docs/benchmarks.md), which is why commands do not get a channel each.
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel } from 'ssh2';
import { z } from 'zod';
import { AgentEvent, type AgentRequest, type CgroupLimits, type EngineRequest, type SandboxRef } from './agentProtocol';
import { GuestError } from './errors';
import type { SshConnection } from './sshConnection';

// -I: isolated (no user site, no env), -S: no site module (faster start, stdlib only).
export const AGENT_COMMAND = 'exec /usr/bin/python3 -u -I -S /usr/local/lib/cowork/agent.py';
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/**
 * One try of the agent's start (its hello). Under emulation on a loaded host Python's start can take
 * many seconds, and an exec channel right after a restart was seen to stay silent for good; so a
 * silent start is retried once on a new channel (the old one closes, and its agent exits on EOF).
 */
export const AGENT_START_TIMEOUT_MS = 45_000;
export const AGENT_START_TRIES = 2;
/** A line from the guest longer than this is dropped (the agent's lines are ~90 KB at most). */
export const MAX_AGENT_LINE = 16 * 1024 * 1024;
/** The change scan's budget in the guest: hashing stops after it, listing after twice it (changes.py). */
export const SCAN_BUDGET_MS = 20_000;
/** Files above this are listed without a hash ("hashSkipped": "too-large"). */
export const SCAN_HASH_MAX_BYTES = 50 * 1024 * 1024;
/** readUpper's answer per file: a length, or one of these two. */
export const UPPER_MISSING = 2n ** 64n - 1n;
export const UPPER_TOO_LARGE = 2n ** 64n - 2n;

export interface ExecOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly stdin?: Buffer | string;
  readonly onStdout?: (chunk: Buffer) => void;
  readonly onStderr?: (chunk: Buffer) => void;
  /** Bytes of stdout and of stderr kept in the result; the rest is counted, not kept. */
  readonly maxOutputBytes?: number;
  /** Run as this guest user (the sandbox layer sets these three). */
  readonly user?: { readonly uid: number; readonly gid: number };
  readonly fds?: Readonly<Record<string, string>>;
  readonly cgroup?: CgroupLimits;
  /** run inside the task's sandbox (sandbox.ts): argv, cwd and env are the command's inside it */
  readonly sandbox?: SandboxRef;
}

export interface ExecResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly aborted: boolean;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** bytes produced beyond maxOutputBytes, per stream */
  readonly droppedBytes: { readonly stdout: number; readonly stderr: number };
  readonly durationMs: number;
  /** killed by the command's memory limit */
  readonly oomKilled: boolean;
  /** hit the command's process limit at least once */
  readonly pidsLimited: boolean;
}

const DiscardResult = z.object({ removed: z.number(), errors: z.array(z.object({ path: z.string(), message: z.string() })) });

const DEFAULT_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
  TERM: 'dumb',
};

interface Pending {
  readonly stdout: Buffer[];
  readonly stderr: Buffer[];
  kept: { stdout: number; stderr: number };
  dropped: { stdout: number; stderr: number };
  aborted: boolean;
  readonly opts: ExecOptions;
  resolve(r: ExecResult): void;
  reject(e: Error): void;
}

export class GuestAgent {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private buf = '';
  private readonly decoder = new StringDecoder('utf8');
  private closedError: GuestError | undefined;
  /** processes of earlier agents (gone, e.g. killed) that this one found and killed at its start */
  swept = 0;

  private constructor(private readonly channel: ClientChannel) {}

  static async start(conn: SshConnection, timeoutMs = AGENT_START_TIMEOUT_MS, tries = AGENT_START_TRIES): Promise<GuestAgent> {
    for (let attempt = 1; ; attempt++) {
      const channel = await conn.exec(AGENT_COMMAND);
      const agent = new GuestAgent(channel);
      try {
        await agent.attach(timeoutMs);
        return agent;
      } catch (err) {
        channel.close();
        if (attempt >= tries || !(err instanceof GuestError && err.code === 'agent-failed' && /did not start within/.test(err.message))) throw err;
      }
    }
  }

  private attach(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => reject(new GuestError('agent-failed', `The guest agent did not start within ${timeoutMs} ms. ${stderr}`)), timeoutMs);
      let hello = false;
      this.channel.stderr.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-4096);
      });
      this.channel.on('data', (chunk: Buffer) => {
        // a character split across two chunks is decoded whole
        this.buf += this.decoder.write(chunk);
        if (this.buf.length > MAX_AGENT_LINE && !this.buf.includes('\n')) this.buf = ''; // never trusted, never buffered without bound
        let nl: number;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, nl);
          this.buf = this.buf.slice(nl + 1);
          if (!line.trim()) continue;
          let ev: AgentEvent;
          try {
            ev = AgentEvent.parse(JSON.parse(line));
          } catch {
            continue; // an unparseable line from the guest is ignored, never trusted
          }
          if (ev.ev === 'hello' && !hello) {
            hello = true;
            this.swept = ev.cgroupSwept ?? 0;
            clearTimeout(timer);
            resolve();
          } else {
            this.onEvent(ev);
          }
        }
      });
      this.channel.on('close', () => {
        clearTimeout(timer);
        this.closedError = new GuestError('disconnected', `The guest agent's channel closed.${stderr ? ` ${stderr.trim()}` : ''}`);
        if (!hello) reject(this.closedError);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(this.closedError);
        }
      });
    });
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Runs argv (Buffers pass raw bytes, e.g. non-UTF-8 file names). */
  exec(argv: readonly (string | Buffer)[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (argv.length === 0) return Promise.reject(new GuestError('agent-failed', 'exec needs a program to run'));
    if (opts.signal?.aborted) return Promise.reject(new GuestError('aborted', 'The command was cancelled before it started.'));
    const id = this.nextId++;
    return new Promise<ExecResult>((resolve, reject) => {
      const p: Pending = { stdout: [], stderr: [], kept: { stdout: 0, stderr: 0 }, dropped: { stdout: 0, stderr: 0 }, aborted: false, opts, resolve, reject };
      this.pending.set(id, p);
      const onAbort = (): void => {
        p.aborted = true;
        this.send({ op: 'kill', id, signal: 'KILL' });
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => opts.signal?.removeEventListener('abort', onAbort);
      p.resolve = (r) => {
        cleanup();
        resolve(r);
      };
      p.reject = (e) => {
        cleanup();
        reject(e);
      };
      const stdin = opts.stdin === undefined ? undefined : Buffer.from(opts.stdin).toString('base64');
      const raw = argv.some((a) => Buffer.isBuffer(a));
      const args = raw ? { argvB64: argv.map((a) => Buffer.from(a).toString('base64')) } : { argv: argv as string[] };
      const env = opts.sandbox || opts.user ? { ...opts.env } : { ...DEFAULT_ENV, ...opts.env };
      this.send({ op: 'run', id, ...args, cwd: opts.cwd, env, timeoutMs: opts.timeoutMs, stdin, user: opts.user, fds: opts.fds, cgroup: opts.cgroup, sandbox: opts.sandbox });
    });
  }

  /**
   * The overlay's change set, scanned inside the agent (changes.py kept loaded there): the same
   * JSON on stdout as running changes.py, without starting Python again for every scan. The scan
   * has a budget in the guest (SCAN_BUDGET_MS, SCAN_HASH_MAX_BYTES): it answers in time and says
   * what it left out.
   */
  changes(opts: { timeoutMs: number; maxOutputBytes: number; budgetMs?: number; hashMaxBytes?: number }): Promise<ExecResult> {
    return this.engineOp({ op: 'changes', budgetMs: opts.budgetMs ?? SCAN_BUDGET_MS, hashMaxBytes: opts.hashMaxBytes ?? SCAN_HASH_MAX_BYTES }, opts);
  }

  /**
   * Files of the overlay's upper dir, read by the agent through descriptors (never through a
   * symlink the sandbox made) with the sandbox user's file-system identity. Stdout holds, per path,
   * an 8-byte big-endian length and the bytes, or UPPER_MISSING / UPPER_TOO_LARGE (over maxBytes).
   * With offset and length, that range of each file (for streaming a large one).
   */
  readUpper(paths: readonly Buffer[], opts: { timeoutMs: number; maxOutputBytes?: number; maxBytes?: number; offset?: number; length?: number }): Promise<ExecResult> {
    return this.engineOp({ op: 'read', paths: paths.map((p) => p.toString('base64')), maxBytes: opts.maxBytes, offset: opts.offset, length: opts.length }, { timeoutMs: opts.timeoutMs, maxOutputBytes: opts.maxOutputBytes ?? 2 * 1024 * 1024 * 1024 });
  }

  /**
   * Removes entries of the upper dir (or all of them) by descriptor, never following a symlink
   * and never outside it; the guest then drops its dentry cache so the workspace shows the host's
   * version again. Paths whose folder on the way is not a folder are reported, not removed.
   */
  async discardUpper(paths: readonly Buffer[] | 'all', opts: { timeoutMs: number }): Promise<{ removed: number; errors: { path: string; message: string }[] }> {
    const r = await this.engineOp(paths === 'all' ? { op: 'discard', all: true } : { op: 'discard', paths: paths.map((p) => p.toString('base64')) }, { timeoutMs: opts.timeoutMs, maxOutputBytes: 16 * 1024 * 1024 });
    return DiscardResult.parse(JSON.parse(r.stdout.toString('utf8')));
  }

  /** An op the agent runs itself (in a thread), answered like a command: out, then exit. */
  private engineOp(req: EngineRequest | { readonly op: 'sandbox-stop'; readonly key: string }, opts: { timeoutMs: number; maxOutputBytes: number }): Promise<ExecResult> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GuestError('agent-failed', `The guest did not answer ${req.op} within ${opts.timeoutMs} ms.`));
      }, opts.timeoutMs);
      const done = <T>(f: (v: T) => void) => (v: T): void => {
        clearTimeout(timer);
        f(v);
      };
      this.pending.set(id, { stdout: [], stderr: [], kept: { stdout: 0, stderr: 0 }, dropped: { stdout: 0, stderr: 0 }, aborted: false, opts, resolve: done(resolve), reject: done(reject) });
      this.send({ ...req, id });
    });
  }

  /**
   * Kills the task's sandbox (sandbox.ts) with everything still running in it, background
   * processes included; its next command starts a new one.
   */
  async stopSandbox(key: string, timeoutMs = 30_000): Promise<void> {
    if (this.closedError) return; // the channel is gone, and the sandbox with it
    await this.engineOp({ op: 'sandbox-stop', key }, { timeoutMs, maxOutputBytes: 0 });
  }

  /** bash -c script, the common case. */
  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(['/bin/bash', '-c', script], opts);
  }

  ping(): Promise<void> {
    return this.exec(['/bin/true']).then(() => undefined);
  }

  close(): void {
    this.channel.end();
  }

  private send(req: AgentRequest): void {
    this.channel.write(JSON.stringify(req) + '\n');
  }

  private onEvent(ev: AgentEvent): void {
    switch (ev.ev) {
      case 'out': {
        const p = this.pending.get(ev.id);
        if (!p) return;
        const data = Buffer.from(ev.b64, 'base64');
        const stream = ev.fd === 1 ? 'stdout' : 'stderr';
        (ev.fd === 1 ? p.opts.onStdout : p.opts.onStderr)?.(data);
        const max = p.opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
        const room = Math.max(0, max - p.kept[stream]);
        if (room > 0) {
          const keep = data.length <= room ? data : data.subarray(0, room);
          p[stream].push(keep);
          p.kept[stream] += keep.length;
        }
        p.dropped[stream] += Math.max(0, data.length - room);
        return;
      }
      case 'exit': {
        const p = this.pending.get(ev.id);
        if (!p) return;
        this.pending.delete(ev.id);
        p.resolve({
          code: ev.code,
          signal: ev.signal,
          timedOut: ev.timedOut,
          aborted: p.aborted,
          stdout: Buffer.concat(p.stdout),
          stderr: Buffer.concat(p.stderr),
          droppedBytes: p.dropped,
          durationMs: ev.ms,
          oomKilled: ev.oomKilled,
          pidsLimited: ev.pidsLimited,
        });
        return;
      }
      case 'error': {
        if (ev.id === null) return;
        const p = this.pending.get(ev.id);
        if (!p) return;
        this.pending.delete(ev.id);
        p.reject(new GuestError('agent-failed', `The guest agent refused the command: ${ev.message}`));
        return;
      }
      case 'started':
      case 'pong':
      case 'hello':
        return;
    }
  }
}
