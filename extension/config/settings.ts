// The cowork.* settings: one zod schema, validated where they are read, so a malformed value gets
// a message naming the setting and nothing starts on a broken configuration; and one table saying
// who may set each of them (SETTING_SCOPES). package.json's contributes.configuration describes the
// same keys, with the same scopes, for the Settings UI (test/unit/manifest.test.ts checks they agree).
//
// Why the table: the agent can write the workspace's .vscode/settings.json (accepted, or at once in
// direct mode). A workspace must never decide where the API key and transcript go, whether changes
// are reviewed, what the guest may reach or how much of the host it may use.
import * as os from 'node:os';
import { z } from 'zod';
import { parseRule } from '../egress/policy';
import { EXTRA_CA_MAX_FILES, readExtraCa } from './extraCa';
import { Accelerator, DebianPackageName, GUEST_LAYER_LIMITS } from '../protocol/vmHost';

/** review: changes wait for Accept; direct: written to the folder as each tool call ends (changes/direct.ts). */
export const WorkspaceMode = z.enum(['review', 'direct']);

const domainPattern = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/i;
// The proxy's own rule parser has the last word (label and name lengths, port range), so a value
// that passes here can never make the task's policy fail to build and the VM fail to start.
const Domain = z
  .string()
  .regex(domainPattern, { message: 'expected a host name like "registry.npmjs.org" or "*.pypi.org", optionally with ":port"', abort: true })
  .refine((v) => {
    try {
      parseRule(v);
      return true;
    } catch {
      return false;
    }
  }, 'not a valid host rule (labels of at most 63 characters, names of at most 253, ports 1–65535)');

export const DEFAULT_ALLOWED_DOMAINS = [
  'registry.npmjs.org',
  '*.npmjs.org',
  'registry.yarnpkg.com',
  'pypi.org',
  'files.pythonhosted.org',
  'deb.debian.org',
  'security.debian.org',
];

export const SettingsSchema = z.object({
  'vm.cpus': z.number().int().min(0).max(64).default(0).describe('0 = half the host CPUs (at least 1, at most 4)'),
  'vm.memoryMiB': z.number().int().min(0).max(1024 * 1024).default(0).describe('0 = a quarter of host memory, between 1024 and 4096 MiB'),
  'vm.diskGiB': z.number().int().min(1).max(4096).default(16),
  'vm.accelerator': Accelerator.default('auto'),
  'vm.idleStopMinutes': z.number().int().min(0).max(24 * 60).default(15),
  'vm.warm': z.boolean().default(true).describe('keep one booted, idle VM ready so that a new task starts without a boot'),
  'workspace.mode': WorkspaceMode.default('review'),
  'network.allowedDomains': z.array(Domain).default(DEFAULT_ALLOWED_DOMAINS),
  'network.deniedDomains': z.array(Domain).default([]),
  // the files are read here too, so that a bad one is a settings problem (shown, nothing started);
  // the VM start reads them again (config/extraCa.ts) and refuses to boot if one went bad since
  'network.extraCaCertificates': z
    .array(z.string().min(1).max(4096))
    .max(EXTRA_CA_MAX_FILES)
    .default([])
    .superRefine((paths, ctx) => {
      const r = readExtraCa(paths);
      if (!r.ok) for (const message of r.problems) ctx.addIssue({ code: 'custom', message });
    })
    .describe("PEM files on this machine: the guest trusts their certificates too (a network that inspects TLS)"),
  model: z.string().min(1).default('claude-opus-5-5'),
  models: z.array(z.string().min(1).max(200)).max(20).default(['claude-opus-5-5', 'claude-sonnet-5-5', 'claude-haiku-5-5']).describe("the panel's model picker offers these (and cowork.model)"),
  'agent.maxTokens': z.number().int().min(256).max(128_000).default(16_000),
  'agent.tokenBudget': z.number().int().min(0).default(2_000_000),
  'agent.commandTimeoutSeconds': z.number().int().min(5).max(3600).default(300),
  'agent.extraHeaders': z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'header names are letters, digits and -'), z.string()).default({}),
  apiBaseUrl: z.union([z.literal(''), z.string().url()]).default(''),
  maxParallelTasks: z.number().int().min(1).max(16).default(2),
  'guest.extraPackages': z.array(DebianPackageName).max(GUEST_LAYER_LIMITS.packages).default([]).describe('Debian packages added to the guest image for every workspace'),
});
export type Settings = z.infer<typeof SettingsSchema>;
export type SettingKey = keyof Settings;
export const SETTING_KEYS = Object.keys(SettingsSchema.shape) as SettingKey[];

/**
 * Who may set a setting.
 * - 'application' / 'machine': VS Code's scopes of the same name (package.json "scope"). VS Code
 *   does not apply them from a workspace (.vscode/settings.json, a .code-workspace file), and
 *   readSettings() takes only the user's value (inspect().globalValue) or our default even when
 *   VS Code hands over a workspace value anyway (it does for the nested form `"cowork": {…}`, whose
 *   top-level key is not a registered setting and so escapes VS Code's scope filter).
 *   'application' = your user settings only; 'machine' = your user settings, or the remote
 *   machine's settings in a remote window (what depends on the machine the VM runs on).
 * - 'window' with narrow 'union': a workspace may set it, but only to add entries to the user's list.
 */
export type ScopeRule =
  | { readonly scope: 'application' | 'machine'; readonly why: string }
  | { readonly scope: 'window'; readonly narrow: 'union'; readonly why: string };

export const SETTING_SCOPES = {
  // where the key and the transcript go
  apiBaseUrl: { scope: 'application', why: 'every request carries your API key and the whole transcript to this URL' },
  'agent.extraHeaders': { scope: 'application', why: 'sent with your key on every request: gateway credentials, or a header that makes a gateway forward the request elsewhere' },
  model: { scope: 'application', why: 'your key pays for it, and behind a gateway the model name picks the upstream provider that receives the transcript' },
  models: { scope: 'application', why: 'the models a task may be started with from the panel: as cowork.model, each one is paid by your key and may pick a gateway\'s upstream' },
  // how much of your key a task may spend
  'agent.maxTokens': { scope: 'application', why: 'what one reply may cost on your key' },
  'agent.tokenBudget': { scope: 'application', why: 'the spending cap on your key (0 = none): a workspace could lift it' },
  // review mode
  'workspace.mode': { scope: 'application', why: '"direct" writes the agent\'s changes to your folder without review' },
  // egress policy
  'network.allowedDomains': { scope: 'application', why: 'a capability grant: each entry is a host the agent may send your code to' },
  'network.deniedDomains': { scope: 'window', narrow: 'union', why: 'a workspace may deny more hosts; its entries are added to yours, never replace them' },
  'network.extraCaCertificates': { scope: 'machine', why: 'certificates every TLS client in the guest trusts: a CA of the workspace\'s choosing could vouch for any site; and the files are read on this machine' },
  // resources of the machine the VM runs on
  'vm.cpus': { scope: 'machine', why: 'host CPUs given to the VM' },
  'vm.memoryMiB': { scope: 'machine', why: 'host memory given to the VM' },
  'vm.diskGiB': { scope: 'machine', why: 'host disk each session may fill' },
  'vm.accelerator': { scope: 'machine', why: 'which hypervisor of this host runs the guest' },
  'vm.idleStopMinutes': { scope: 'machine', why: 'how long an idle VM keeps holding host memory (0 = forever)' },
  'vm.warm': { scope: 'machine', why: 'an extra VM that holds host memory (and CPU while it boots) before any task asks for it' },
  'agent.commandTimeoutSeconds': { scope: 'machine', why: 'how long one agent command may use the VM\'s CPUs' },
  maxParallelTasks: { scope: 'machine', why: 'how many VMs may run on this host at once' },
  'guest.extraPackages': { scope: 'machine', why: 'packages installed (their maintainer scripts run as root) when the guest layer is built on this machine; a workspace asks through .cowork/guest.json instead, with consent' },
} as const satisfies { readonly [K in SettingKey]: ScopeRule };

/** Settings a workspace cannot set at all ('application' or 'machine'). */
export const USER_ONLY_KEYS = SETTING_KEYS.filter((k) => SETTING_SCOPES[k].scope !== 'window');

/** What VS Code's configuration.inspect() reports for one key (only the parts we look at). */
export interface InspectedSetting {
  readonly globalValue?: unknown;
  readonly workspaceValue?: unknown;
  readonly workspaceFolderValue?: unknown;
}

export interface EffectiveRaw {
  /** key → the value parseSettings() gets (undefined = our default) */
  readonly raw: Record<string, unknown>;
  /** user-only settings for which a workspace value was present and dropped */
  readonly ignored: SettingKey[];
}

/**
 * The values that count, from what inspect() reports: for a user-only setting the user's value
 * (never the workspace's); for a narrowing list the user's entries (or the default) plus the
 * workspace's. A narrowing value that is not a list is passed on so that validation refuses it
 * (fail closed: the workspace meant to deny something we cannot read).
 */
export function effectiveRaw(inspect: (key: SettingKey) => InspectedSetting | undefined): EffectiveRaw {
  const raw: Record<string, unknown> = {};
  const ignored: SettingKey[] = [];
  for (const key of SETTING_KEYS) {
    const v = inspect(key) ?? {};
    const rule: ScopeRule = SETTING_SCOPES[key];
    const fromWorkspace = [v.workspaceValue, v.workspaceFolderValue].filter((x) => x !== undefined && x !== null);
    if (rule.scope !== 'window') {
      raw[key] = v.globalValue;
      if (fromWorkspace.length > 0) ignored.push(key);
      continue;
    }
    const base = v.globalValue ?? SettingsSchema.shape[key].parse(undefined);
    const parts = [base, ...fromWorkspace];
    raw[key] = parts.every(Array.isArray) ? [...new Set((parts as unknown[][]).flat())] : parts.find((p) => !Array.isArray(p));
  }
  return { raw, ignored };
}

/**
 * The cowork.* settings a settings file sets, in any of the forms VS Code reads: "cowork.a.b": v,
 * "cowork.a": { "b": v } or "cowork": { "a": { "b": v } }. Language sections ("[python]": …) are
 * skipped (Cowork reads no language-specific values). The file is JSON with comments and trailing
 * commas; section "settings" reads a .code-workspace file. If the file does not parse, a setting
 * counts as present when its name appears in the text (this only decides whether to tell the
 * person, never what is applied).
 */
export function settingsInFile(text: string, section?: 'settings'): SettingKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stripJsonComments(text));
  } catch {
    if (!text.includes('"cowork')) return [];
    return SETTING_KEYS.filter((k) => text.includes(`${k.split('.').pop()!}"`));
  }
  // a .code-workspace file keeps its settings under "settings"
  if (section) parsed = lookup(parsed, [section]);
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return [];
  const tree: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (/^\[.*\]$/.test(k)) continue;
    addToTree(tree, k.split('.'), v);
  }
  return SETTING_KEYS.filter((k) => lookup(tree, ['cowork', ...k.split('.')]) !== undefined);
}

function addToTree(tree: Record<string, unknown>, path: string[], value: unknown): void {
  let node = tree;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    if (!next || typeof next !== 'object' || Array.isArray(next)) node[seg] = {};
    node = node[seg] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  const prev = node[last];
  if (value && typeof value === 'object' && !Array.isArray(value) && prev && typeof prev === 'object' && !Array.isArray(prev)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) addToTree(prev as Record<string, unknown>, k.split('.'), v);
  } else if (value && typeof value === 'object' && !Array.isArray(value)) {
    node[last] = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) addToTree(node[last] as Record<string, unknown>, k.split('.'), v);
  } else node[last] = value;
}

function lookup(tree: unknown, path: string[]): unknown {
  let node = tree;
  for (const seg of path) {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[seg];
  }
  return node;
}

/** JSON with comments (// and /* *\/) and trailing commas → JSON; strings are left as they are. */
export function stripJsonComments(text: string): string {
  const out: string[] = [];
  /** index in out of a comma that is trailing if only white space follows before } or ] */
  let comma = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out.push(text.slice(i, j + 1));
      i = j;
      comma = -1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else if (c === '}' || c === ']') {
      if (comma >= 0) out[comma] = '';
      out.push(c);
      comma = -1;
    } else {
      if (c === ',') comma = out.length;
      else if (!/\s/.test(c)) comma = -1;
      out.push(c);
    }
  }
  return out.join('');
}

export interface SettingsProblem {
  readonly key: string;
  readonly message: string;
}

export type SettingsResult = { readonly ok: true; readonly settings: Settings } | { readonly ok: false; readonly problems: SettingsProblem[] };

/** raw: setting key (without the "cowork." prefix) → value, undefined where unset. */
export function parseSettings(raw: Readonly<Record<string, unknown>>): SettingsResult {
  const input: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) if (raw[key] !== undefined && raw[key] !== null) input[key] = raw[key];
  const parsed = SettingsSchema.safeParse(input);
  if (parsed.success) return { ok: true, settings: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((i) => ({
      key: `cowork.${String(i.path[0] ?? '')}`,
      message: `${i.message}${i.path.length > 1 ? ` (at ${i.path.slice(1).join('.')})` : ''}`,
    })),
  };
}

export function describeProblems(problems: readonly SettingsProblem[]): string {
  return problems.map((p) => `${p.key}: ${p.message}`).join('; ');
}

/** Turns the 0 = "size it to the host" settings into concrete VM resources. */
export function vmResources(s: Settings, host = { cpus: os.cpus().length, memMiB: Math.floor(os.totalmem() / 1048576) }): { cpus: number; memoryMiB: number; diskGiB: number } {
  const cpus = s['vm.cpus'] || Math.min(4, Math.max(1, Math.floor(host.cpus / 2)));
  const memoryMiB = s['vm.memoryMiB'] || Math.min(4096, Math.max(1024, Math.floor(host.memMiB / 4)));
  return { cpus, memoryMiB, diskGiB: s['vm.diskGiB'] };
}
