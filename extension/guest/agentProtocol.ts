// Lines the guest agent (vm-host/guest/root/usr/local/lib/cowork/agent.py) writes. The guest is
// on the far side of the VM boundary, so its lines are validated like any untrusted input.
import { z } from 'zod';

export const AgentEvent = z.discriminatedUnion('ev', [
  z.object({ ev: z.literal('hello'), pid: z.number(), cgroupSwept: z.number().optional() }),
  z.object({ ev: z.literal('started'), id: z.number(), pid: z.number() }),
  z.object({ ev: z.literal('out'), id: z.number(), fd: z.union([z.literal(1), z.literal(2)]), b64: z.string() }),
  z.object({
    ev: z.literal('exit'),
    id: z.number(),
    code: z.number().nullable(),
    signal: z.string().nullable(),
    timedOut: z.boolean(),
    ms: z.number(),
    oomKilled: z.boolean().default(false),
    pidsLimited: z.boolean().default(false),
  }),
  z.object({ ev: z.literal('pong'), id: z.number().nullable() }),
  z.object({ ev: z.literal('error'), id: z.number().nullable(), message: z.string() }),
]);
export type AgentEvent = z.infer<typeof AgentEvent>;

export interface AgentRun {
  readonly op: 'run';
  readonly id: number;
  readonly argv?: readonly string[];
  /** raw-byte arguments, base64 (instead of argv) */
  readonly argvB64?: readonly string[];
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly stdin?: string;
  readonly user?: { readonly uid: number; readonly gid: number };
  /** files the agent opens read-only in the child at these descriptor numbers */
  readonly fds?: Readonly<Record<string, string>>;
  readonly cgroup?: CgroupLimits;
  /**
   * Run in the task's sandbox (started with its argv on the first command, or again after it died):
   * argv, cwd and env are then the command's inside it, and user/fds are not used.
   */
  readonly sandbox?: SandboxRef;
}

/** The task's one sandbox: bwrap running sandbox-exec, which starts each command (sandbox.ts). */
export interface SandboxRef {
  /** names the sandbox (and its cgroup, sb-<key>) in the agent: letters, digits, '-' */
  readonly key: string;
  /** bwrap's argv, ending in sandbox-exec and the control descriptor's number */
  readonly argv: readonly string[];
  readonly user: { readonly uid: number; readonly gid: number };
  /** files the agent opens read-only for bwrap at these descriptor numbers (the seccomp filter) */
  readonly fds: Readonly<Record<string, string>>;
  /** the descriptor number of the socket to the executor inside */
  readonly controlFd: number;
  /** pids.max of the whole sandbox (commands and what they left running) */
  readonly pidsMax?: number;
}

export interface CgroupLimits {
  readonly name: string;
  readonly memoryMax?: number;
  readonly pidsMax?: number;
  /** cgroup v2 cpu.max, e.g. "180000 100000" */
  readonly cpuMax?: string;
}
/** Ops the agent runs itself, in a thread (answered like a command: out, then exit). */
export type EngineRequest =
  /** the change set; hashing stops after budgetMs, files over hashMaxBytes are not hashed */
  | { readonly op: 'changes'; readonly budgetMs?: number; readonly hashMaxBytes?: number }
  /** files of the upper dir (base64 raw paths), by descriptor, as the sandbox user */
  | { readonly op: 'read'; readonly paths: readonly string[]; readonly maxBytes?: number; readonly offset?: number; readonly length?: number }
  /** entries of the upper dir removed by descriptor, or all of them */
  | { readonly op: 'discard'; readonly paths: readonly string[] }
  | { readonly op: 'discard'; readonly all: true };

export type AgentRequest =
  | AgentRun
  | { readonly op: 'kill'; readonly id: number; readonly signal: string }
  | { readonly op: 'ping'; readonly id: number }
  /** kills the task's sandbox with everything in it; answered with exit 0 */
  | { readonly op: 'sandbox-stop'; readonly id: number; readonly key: string }
  | (EngineRequest & { readonly id: number });
