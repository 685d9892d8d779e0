// Every state file Cowork keeps (the task index and each task's info, transcripts, the last change
// scan, direct-mode records, own-write times, accelerator verdicts) goes through this one module,
// so all of them get the same guarantees:
// - a whole-file write is atomic: a temporary file in the same folder (O_EXCL, mode 0600),
//   written, fsynced, renamed over the target, and the folder fsynced; a crash leaves either the
//   old file or the new one, never a torn one;
// - a file that cannot be parsed is moved aside as `<name>.corrupt-<time>` (never overwritten:
//   an existing name gets a counter), reported once through the caller's `report`, and the caller
//   starts from what could be kept;
// - a JSONL journal (the transcript) appends one line per event; a failed append is reported (once
//   per run of failures) and the next append is still attempted, so one bad moment (a full disk)
//   does not silence the rest of the task.
// Plain Node, no vscode: the engine, the helper and the tests use it directly.
import { randomBytes } from 'node:crypto';
import { constants as C, promises as fs } from 'node:fs';
import * as path from 'node:path';

export interface StateProblem {
  readonly file: string;
  /** where the unreadable file went, when it was moved aside */
  readonly movedTo?: string;
  readonly message: string;
}
export type StateReporter = (problem: StateProblem) => void;

/** The default reporter: nobody listens (tests and the helper pass their own). */
export const ignoreProblems: StateReporter = () => undefined;

/** Writes `data` to `file` atomically (temp + fsync + rename + folder fsync). */
export async function writeFileAtomic(file: string, data: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, opts.mode ?? 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

export function writeJsonAtomic(file: string, value: unknown, opts: { mode?: number; pretty?: boolean } = {}): Promise<void> {
  return writeFileAtomic(file, JSON.stringify(value, null, opts.pretty ? 2 : undefined) + '\n', opts);
}

async function syncDir(dir: string): Promise<void> {
  // makes the rename durable; not possible on every platform (Windows), where it is skipped
  const dh = await fs.open(dir, C.O_RDONLY).catch(() => undefined);
  await dh?.sync().catch(() => undefined);
  await dh?.close().catch(() => undefined);
}

/** Renames an unreadable state file to `<name>.corrupt-<time>` (never over an existing file). */
export async function moveAside(file: string, now = new Date()): Promise<string> {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  for (let n = 0; ; n++) {
    const target = `${file}.corrupt-${stamp}${n ? `-${n}` : ''}`;
    try {
      // link + unlink instead of rename: link fails if the target exists, so nothing is overwritten
      await fs.link(file, target);
      await fs.unlink(file);
      return target;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      if ((err as NodeJS.ErrnoException).code === 'EPERM' || (err as NodeJS.ErrnoException).code === 'ENOTSUP') {
        // a file system without hard links: check-then-rename is the best we can do there
        if (await exists(target)) continue;
        await fs.rename(file, target);
        return target;
      }
      throw err;
    }
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Reads a JSON state file. Missing → undefined. Unparseable or refused by `parse` → moved aside,
 * reported, undefined (the caller starts empty or rebuilds).
 */
export async function readJsonState<T>(file: string, parse: (value: unknown) => T, report: StateReporter): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    report({ file, message: `cannot read ${path.basename(file)}: ${(err as Error).message}` });
    return undefined;
  }
  try {
    return parse(JSON.parse(text));
  } catch (err) {
    const movedTo = await moveAside(file).catch(() => undefined);
    report({ file, movedTo, message: `${path.basename(file)} was unreadable (${firstLine(err)}); ${movedTo ? `moved aside as ${path.basename(movedTo)}` : 'it could not be moved aside'}` });
    return undefined;
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200);
}

/**
 * An append-only JSONL journal. `open` reads the valid lines; if any line is invalid (a torn last
 * write, or damage), the file is moved aside, reported, and rewritten atomically with the valid
 * lines, so later appends never land after a torn fragment.
 */
export class JsonlJournal<T> {
  private writing: Promise<void> = Promise.resolve();
  private failing = false;
  private backlog = '';
  /** appends that failed since the journal was opened */
  failures = 0;

  private constructor(
    readonly file: string,
    private readonly report: StateReporter,
  ) {}

  static async open<T>(file: string, parse: (value: unknown) => T, report: StateReporter): Promise<{ journal: JsonlJournal<T>; entries: T[] }> {
    const journal = new JsonlJournal<T>(file, report);
    await fs.mkdir(path.dirname(file), { recursive: true });
    let text = '';
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') report({ file, message: `cannot read ${path.basename(file)}: ${(err as Error).message}` });
      return { journal, entries: [] };
    }
    const entries: T[] = [];
    const lines = text.split('\n');
    const last = lines.pop(); // '' when the file ends with a newline
    let bad = last ? 1 : 0;
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        entries.push(parse(JSON.parse(line)));
      } catch {
        bad++;
      }
    }
    if (bad > 0) {
      const movedTo = await moveAside(file).catch(() => undefined);
      if (movedTo) await writeFileAtomic(file, entries.map((e) => JSON.stringify(e) + '\n').join(''));
      report({
        file,
        movedTo,
        message: `${path.basename(file)} had ${bad} unreadable line(s); ${movedTo ? `the file was moved aside as ${path.basename(movedTo)} and the ${entries.length} readable entries kept` : 'it could not be moved aside'}`,
      });
    }
    return { journal, entries };
  }

  /**
   * Queues one line. A failed append is reported (once per run of failures) and its lines are kept
   * and written, in order, with the next append that succeeds: later appends still happen and,
   * once the disk recovers, nothing is missing.
   */
  append(entry: T): void {
    this.backlog += JSON.stringify(entry) + '\n';
    this.writing = this.writing.then(async () => {
      const data = this.backlog;
      if (!data) return;
      try {
        await appendWhole(this.file, data);
        this.backlog = this.backlog.slice(data.length);
        if (this.failing) {
          this.failing = false;
          this.report({ file: this.file, message: `writing ${path.basename(this.file)} works again; the entries held back were written` });
        }
      } catch (err) {
        this.failures++;
        if (!this.failing) {
          this.failing = true;
          this.report({ file: this.file, message: `cannot append to ${path.basename(this.file)}: ${firstLine(err)} (the entries are held in memory and written with the next one that succeeds)` });
        }
      }
    });
  }

  /** Lines not yet on disk (after a failed append). */
  get pending(): number {
    return this.backlog ? this.backlog.split('\n').length - 1 : 0;
  }

  /** Resolves when every queued append has been attempted. */
  flush(): Promise<void> {
    return this.writing;
  }
}

/** Appends `data`, or nothing: a partial write (a full disk) is cut back off. */
async function appendWhole(file: string, data: string): Promise<void> {
  const fh = await fs.open(file, C.O_WRONLY | C.O_APPEND | C.O_CREAT | C.O_NOFOLLOW, 0o600);
  try {
    const size = (await fh.stat()).size;
    try {
      await fh.writeFile(data);
    } catch (err) {
      await fh.truncate(size).catch(() => undefined);
      throw err;
    }
  } finally {
    await fh.close();
  }
}
