// One record per egress decision, appended to the task's audit log (JSONL) and emitted as an event.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
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
}

export interface AuditSink {
  write(record: EgressRecord): void;
  close(): Promise<void>;
}

export class JsonlAudit implements AuditSink {
  private readonly stream: WriteStream;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.stream = createWriteStream(file, { flags: 'a', mode: 0o600 });
  }

  write(record: EgressRecord): void {
    this.stream.write(JSON.stringify(record) + '\n');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
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
