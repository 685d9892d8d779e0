// The tasks of one workspace: created from a prompt, listed (index.json in the extension's global
// storage, so they survive a reload), and run at most cowork.maxParallelTasks at a time (the rest
// wait, shown as queued).
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import type { TurnOutcome } from '../agent/loop';
import { Task, type TaskDeps, type TaskInfo } from './task';

const Index = z.array(z.object({ id: z.string().regex(/^[a-z0-9]{6,32}$/), title: z.string(), createdAt: z.number(), mode: z.enum(['review', 'direct']).default('review') }));

export class TaskManager extends EventEmitter<{ changed: [] }> {
  private readonly tasks = new Map<string, Task>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;

  private constructor(private readonly deps: TaskDeps) {
    super();
  }

  static async load(deps: TaskDeps): Promise<TaskManager> {
    const m = new TaskManager(deps);
    let saved: z.infer<typeof Index> = [];
    try {
      saved = Index.parse(JSON.parse(await readFile(m.indexFile, 'utf8')));
    } catch {
      // no tasks yet, or an unreadable index: start empty rather than fail
    }
    for (const info of saved) m.adopt(await Task.open(info, deps));
    return m;
  }

  private get indexFile(): string {
    return path.join(this.deps.storageDir, 'tasks', 'index.json');
  }

  list(): TaskInfo[] {
    return [...this.tasks.values()].map((t) => ({ ...t.info, state: t.state })).sort((a, b) => b.createdAt - a.createdAt);
  }

  get(id: string): Task | undefined {
    return this.tasks.get(id);
  }

  private adopt(task: Task): void {
    this.tasks.set(task.info.id, task);
    task.on('state', () => this.emit('changed'));
  }

  private async save(): Promise<void> {
    await mkdir(path.dirname(this.indexFile), { recursive: true });
    const tmp = `${this.indexFile}.tmp`;
    await writeFile(tmp, JSON.stringify([...this.tasks.values()].map((t) => t.info), null, 2));
    await rename(tmp, this.indexFile);
  }

  /** Creates a task and starts it (or queues it when cowork.maxParallelTasks are running). */
  async create(prompt: string): Promise<{ task: Task; done: Promise<TurnOutcome> }> {
    const title = prompt.trim().split('\n')[0]!.slice(0, 80) || 'Untitled task';
    const task = await Task.open({ id: randomBytes(6).toString('hex'), title, createdAt: Date.now(), mode: this.deps.settings()['workspace.mode'] }, this.deps);
    this.adopt(task);
    await this.save();
    this.emit('changed');
    return { task, done: this.send(task, prompt) };
  }

  /** A follow-up (or the first prompt), respecting the parallel limit. */
  async send(task: Task, text: string): Promise<TurnOutcome> {
    if (this.active >= this.deps.settings().maxParallelTasks) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await task.send(text);
    } finally {
      this.active--;
      this.waiting.shift()?.();
      this.emit('changed');
    }
  }

  async dispose(): Promise<void> {
    await Promise.allSettled([...this.tasks.values()].map((t) => t.dispose()));
    this.removeAllListeners();
  }
}
