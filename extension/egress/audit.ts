// One record per egress decision, appended to the task's audit log (JSONL) and emitted as an event.
// The guest decides how many requests it makes, so nothing here may grow without bound: the log
// file rotates at AUDIT_MAX_BYTES (keeping AUDIT_KEEP older files), repeated denials of the same
// destination and reason within DENIAL_WINDOW_MS become one record with a count (DenialCoalescer),
// and the list of blocked requests kept for the panel holds the latest BLOCKED_KEEP (BlockedList).
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import * as path from 'node:path';

export interface EgressRecord {
  readonly time: string;
  readonly task: string;
  /** http: a proxied plain-HTTP request; connect: an HTTP CONNECT tunnel; socks: a SOCKS5 CONNECT */
  readonly via: 'http' | 'connect' | 'socks';
  readonly host: string;
  readonly port: number;
  readonly method?: string;
  readonly allowed: boolean;
  readonly rule: string;
  readonly reason?: string;
  /** the address actually connected to */
  readonly address?: string;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly durationMs?: number;
  /** how an allowed tunnel ended: "client closed", "server closed", "error: …", "proxy closed" */
  readonly outcome?: string;
  /** a coalesced record: this many denials like it, from `time` to `lastTime` (absent: one) */
  readonly count?: number;
  readonly lastTime?: string;
}

export interface AuditSink {
  write(record: EgressRecord): void;
  close(): Promise<void>;
}

export const AUDIT_MAX_BYTES = 10 * 1024 * 1024;
export const AUDIT_KEEP = 2;

/** The audit log: `file`, rotated to `file.1` … `file.<keep>` when a write would take it past `maxBytes`. */
export class JsonlAudit implements AuditSink {
  private fd: number | undefined;
  private size: number;
  /** records that could not be written (disk full, …); the proxy never fails because of its log */
  dropped = 0;
  private readonly maxBytes: number;
  private readonly keep: number;

  constructor(
    readonly file: string,
    opts: { maxBytes?: number; keep?: number } = {},
  ) {
    this.maxBytes = opts.maxBytes ?? AUDIT_MAX_BYTES;
    this.keep = opts.keep ?? AUDIT_KEEP;
    mkdirSync(path.dirname(file), { recursive: true });
    this.fd = openSync(file, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  write(record: EgressRecord): void {
    if (this.fd === undefined) return;
    const line = Buffer.from(JSON.stringify(record) + '\n');
    try {
      if (this.size > 0 && this.size + line.length > this.maxBytes) this.rotate();
      writeSync(this.fd, line);
      this.size += line.length;
    } catch {
      this.dropped++;
    }
  }

  private rotate(): void {
    closeSync(this.fd!);
    this.fd = undefined;
    for (let i = this.keep; i >= 1; i--) {
      const from = i === 1 ? this.file : `${this.file}.${i - 1}`;
      try {
        renameSync(from, `${this.file}.${i}`);
      } catch {
        // that generation does not exist yet
      }
    }
    if (this.keep === 0) closeSync(openSync(this.file, 'w', 0o600));
    this.fd = openSync(this.file, 'a', 0o600);
    this.size = 0;
  }

  close(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    return Promise.resolve();
  }
}

export class MemoryAudit implements AuditSink {
  readonly records: EgressRecord[] = [];
  write(record: EgressRecord): void {
    this.records.push(record);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export const DENIAL_WINDOW_MS = 60_000;
/** How many distinct (destination, reason) pairs are held open at once; the oldest is flushed beyond that. */
export const DENIAL_KEYS = 1000;

interface Pending {
  readonly since: number;
  first?: EgressRecord;
  count: number;
  lastTime?: string;
}

/**
 * Passes allowed records and the first denial of a (via, host, port, rule, reason) through at once;
 * further identical denials within `windowMs` are counted and leave as one record with `count` and
 * `lastTime` when the window ends (or at flush()). The sum of counts is the number of denials.
 */
export class DenialCoalescer {
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: (r: EgressRecord) => void,
    private readonly windowMs = DENIAL_WINDOW_MS,
    private readonly maxKeys = DENIAL_KEYS,
    private readonly now: () => number = Date.now,
  ) {}

  push(r: EgressRecord): void {
    this.expire();
    if (r.allowed) return this.out(r);
    const key = JSON.stringify([r.via, r.host, r.port, r.rule, r.reason]);
    const p = this.pending.get(key);
    if (p) {
      p.first ??= r;
      p.count++;
      p.lastTime = r.time;
      return;
    }
    while (this.pending.size >= this.maxKeys) this.flushKey(this.pending.keys().next().value!);
    this.pending.set(key, { since: this.now(), count: 0 });
    this.out(r);
    this.timer ??= setInterval(() => this.expire(), Math.max(10, Math.floor(this.windowMs / 4))).unref();
  }

  /** Writes every pending count now (before the log closes). */
  flush(): void {
    for (const key of [...this.pending.keys()]) this.flushKey(key);
  }

  private expire(): void {
    const t = this.now();
    // Map order is insertion order, and entries are inserted in time order.
    for (const [key, p] of this.pending) {
      if (t - p.since < this.windowMs) break;
      this.flushKey(key);
    }
    if (this.pending.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private flushKey(key: string): void {
    const p = this.pending.get(key);
    this.pending.delete(key);
    if (p?.first && p.count > 0) this.out({ ...p.first, count: p.count, lastTime: p.lastTime });
    if (this.pending.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

export const BLOCKED_KEEP = 200;

/** The latest denials for the panel, and how many there were in all. */
export class BlockedList {
  private readonly items: EgressRecord[] = [];
  total = 0;
  constructor(private readonly keep = BLOCKED_KEEP) {}
  add(r: EgressRecord): void {
    if (r.allowed) return;
    this.total += r.count ?? 1;
    this.items.push(r);
    if (this.items.length > this.keep) this.items.splice(0, this.items.length - this.keep);
  }
  get recent(): readonly EgressRecord[] {
    return this.items;
  }
}
