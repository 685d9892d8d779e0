// The one protocol between the extension host and the side-panel webview. The host validates what
// the webview sends (it is a web page), and the webview validates what it receives.
import { z } from 'zod';
import { PromptImages, TranscriptEvent } from './transcript';
import { VmStateName } from './vmHost';

/** at most this many completions for an @mention */
export const MENTION_MATCHES = 12;

export const VmStatusView = z.object({
  state: VmStateName,
  accelerator: z.string().optional(),
  detail: z.string().optional(),
  bootMs: z.number().optional(),
  imageProgress: z.object({ message: z.string(), fraction: z.number() }).optional(),
});
export type VmStatusView = z.infer<typeof VmStatusView>;

export const TaskState = z.enum(['queued', 'booting', 'running', 'idle', 'failed', 'stopped']);
export const TaskSummary = z.object({ id: z.string(), title: z.string(), createdAt: z.number(), state: TaskState, changes: z.number().int().nonnegative().default(0), mode: z.enum(['review', 'direct']).default('review') });
export type TaskSummary = z.infer<typeof TaskSummary>;

export const LiveView = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text_delta'), text: z.string() }),
  z.object({ type: z.literal('tool_input'), id: z.string(), name: z.string(), partialJson: z.string() }),
  z.object({ type: z.literal('tool_start'), id: z.string(), name: z.string(), input: z.unknown() }),
  z.object({ type: z.literal('tool_output'), id: z.string(), chunk: z.string(), stream: z.enum(['stdout', 'stderr']) }),
  z.object({ type: z.literal('transcript'), event: TranscriptEvent }),
  z.object({ type: z.literal('turn_start') }),
  z.object({ type: z.literal('turn_end') }),
]);

/** A blocked network request as the panel lists it; `canAllow` false: no Allow button, `why` says why. */
export const BlockedView = z.object({ host: z.string(), port: z.number(), rule: z.string(), reason: z.string().optional(), time: z.string(), count: z.number().int().positive().default(1), canAllow: z.boolean(), why: z.string().optional() });
export type BlockedView = z.infer<typeof BlockedView>;

const Piece = z.object({ stream: z.enum(['stdout', 'stderr']), text: z.string() });
/** A tool call's output as it streamed (extension/panel/liveOutput.ts). */
export const StreamedOutputView = z.object({ head: z.array(Piece), tail: z.array(Piece), seen: z.number().int().nonnegative(), omitted: z.number().int().nonnegative() });
/** What the host keeps of a task beyond its transcript: streamed tool output and the text being written. */
export const LiveSnapshot = z.object({
  text: z.string(),
  tools: z.array(z.object({ id: z.string(), name: z.string(), input: z.unknown(), running: z.boolean(), output: StreamedOutputView })),
});
export type LiveSnapshot = z.infer<typeof LiveSnapshot>;

/** One changed file as the panel shows it: a unified diff (text files) or a note (binary, large, symlink). */
export const ChangeView = z.object({
  path: z.string(),
  display: z.string(),
  kind: z.enum(['added', 'modified', 'deleted', 'symlink', 'mode']),
  conflicted: z.boolean(),
  /** direct mode: already written to the workspace (the diff is your version → now) */
  applied: z.boolean().default(false),
  added: z.number().int().nonnegative(),
  removed: z.number().int().nonnegative(),
  lines: z.array(z.string()),
  truncated: z.boolean(),
  note: z.string().optional(),
  /** sha256 of the agent's version this row was rendered from (Accept sends it back and the host checks it) */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** changeFingerprint() of the change this row shows: Accept sends it back, the host refuses a different change */
  fingerprint: z.string().max(4096).optional(),
  /** why it runs code or changes a tool on the person's machine ("runs on your machine") */
  risk: z.string().optional(),
  /** why Accept will refuse it (leaves the workspace, enters .git) */
  refusal: z.string().optional(),
  /** a kind the five above do not say, e.g. "symlink replaced by a folder" */
  label: z.string().optional(),
});
export type ChangeView = z.infer<typeof ChangeView>;

/** What the task's VM uses right now (vm.list, sampled by the host). */
export const VmUsageView = z.object({ cpuPercent: z.number().nonnegative().optional(), rssBytes: z.number().nonnegative().optional(), diskBytes: z.number().nonnegative().optional(), warmRssBytes: z.number().nonnegative().optional().describe("the warm VM's resident memory (cowork.vm.warm), shown with the task's"), cpus: z.number().int().positive().optional() });
export type VmUsageView = z.infer<typeof VmUsageView>;

export const HostToWebview = z.discriminatedUnion('type', [
  /** `models`: what the model picker offers, the default (cowork.model) first */
  z.object({ type: z.literal('state'), vm: VmStatusView, trusted: z.boolean(), settingsProblem: z.string().nullable(), scripted: z.boolean().default(false), models: z.array(z.string().max(200)).max(21).default([]) }),
  z.object({ type: z.literal('commandResult'), command: z.string(), output: z.string(), exit: z.string() }),
  /** `history`: the prompts and follow-ups sent before, newest first (the prompt box's up arrow) */
  z.object({ type: z.literal('tasks'), tasks: z.array(TaskSummary), selected: z.string().nullable(), history: z.array(z.string().max(100_000)).max(100).default([]) }),
  /** everything the panel shows for a task, sent whole when it is selected or the view (re)loads */
  z.object({ type: z.literal('transcript'), taskId: z.string(), events: z.array(TranscriptEvent), vm: VmStatusView, live: LiveSnapshot.optional(), blocked: z.array(BlockedView).default([]), blockedTotal: z.number().int().nonnegative().default(0) }),
  z.object({ type: z.literal('live'), taskId: z.string(), event: LiveView }),
  z.object({ type: z.literal('taskVm'), taskId: z.string(), vm: VmStatusView }),
  z.object({ type: z.literal('blocked'), taskId: z.string(), items: z.array(BlockedView), total: z.number().int().nonnegative() }),
  z.object({ type: z.literal('changes'), taskId: z.string(), files: z.array(ChangeView) }),
  z.object({ type: z.literal('vmUsage'), taskId: z.string(), usage: VmUsageView }),
  /** workspace paths matching what follows an @ in the prompt (answer to findFiles) */
  z.object({ type: z.literal('fileMatches'), requestId: z.number().int(), paths: z.array(z.string().max(4096)).max(MENTION_MATCHES) }),
  /** text for the prompt box: the active editor's file or selection as an @mention (answer to attachEditor) */
  z.object({ type: z.literal('insertPrompt'), text: z.string().max(4096) }),
  /** a notice the panel shows in its notices area (e.g. why an attachment was not added) */
  z.object({ type: z.literal('notice'), message: z.string().max(4000) }),
]);
export type HostToWebview = z.infer<typeof HostToWebview>;

export const WebviewToHost = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  /** the webview refused a message from the host (a bug between the two ends): logged by the host */
  z.object({ type: z.literal('invalidMessage'), error: z.string().max(2000) }),
  z.object({ type: z.literal('startVm') }),
  z.object({ type: z.literal('stopVm') }),
  /** `model`: from the picker (the host checks it is one it offered); `images`: pasted into the prompt */
  z.object({ type: z.literal('delegate'), prompt: z.string().min(1).max(100_000), model: z.string().min(1).max(200).optional(), images: PromptImages.optional() }),
  z.object({ type: z.literal('runCommand'), command: z.string().min(1).max(10_000) }),
  z.object({ type: z.literal('selectTask'), taskId: z.string() }),
  z.object({ type: z.literal('stopTask'), taskId: z.string() }),
  z.object({ type: z.literal('followUp'), taskId: z.string(), text: z.string().min(1).max(100_000), images: PromptImages.optional() }),
  /** completion for an @mention: workspace files whose path contains `query` */
  z.object({ type: z.literal('findFiles'), requestId: z.number().int(), query: z.string().max(200) }),
  /** the paperclip: mention the active editor's file (or its selected lines) in the prompt */
  z.object({ type: z.literal('attachEditor') }),
  z.object({ type: z.literal('openDiff'), taskId: z.string(), path: z.string().min(1).max(8192) }),
  z.object({ type: z.literal('acceptFile'), taskId: z.string(), path: z.string().min(1).max(8192), sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(), fingerprint: z.string().max(4096).optional() }),
  z.object({ type: z.literal('discardFile'), taskId: z.string(), path: z.string().min(1).max(8192) }),
  z.object({ type: z.literal('acceptAll'), taskId: z.string() }),
  /** a generated folder (node_modules, .venv: extension/panel/generated.ts) as one row: all its files at once */
  z.object({ type: z.literal('acceptFolder'), taskId: z.string(), folder: z.string().min(1).max(8192) }),
  z.object({ type: z.literal('discardFolder'), taskId: z.string(), folder: z.string().min(1).max(8192) }),
  z.object({ type: z.literal('discardAll'), taskId: z.string() }),
  z.object({ type: z.literal('revealChanges'), taskId: z.string() }),
  /** the same task UI in an editor tab */
  z.object({ type: z.literal('openInEditor'), taskId: z.string() }),
  z.object({ type: z.literal('allowDomain'), taskId: z.string(), host: z.string().min(1).max(253).regex(/^[a-zA-Z0-9.-]+$/), port: z.number().int().min(1).max(65535).optional() }),
]);
export type WebviewToHost = z.infer<typeof WebviewToHost>;
