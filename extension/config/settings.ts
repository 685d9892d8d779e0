// The cowork.* settings: one zod schema, validated where they are read, so a malformed value gets
// a message naming the setting and nothing starts on a broken configuration. package.json's
// contributes.configuration describes the same keys for the Settings UI (test/unit/manifest.test.ts
// checks the two agree).
import * as os from 'node:os';
import { z } from 'zod';
import { Accelerator } from '../protocol/vmHost';

/** review: changes wait for Accept; direct: written to the folder as each tool call ends (changes/direct.ts). */
export const WorkspaceMode = z.enum(['review', 'direct']);

const domainPattern = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/i;
const Domain = z.string().regex(domainPattern, 'expected a host name like "registry.npmjs.org" or "*.pypi.org", optionally with ":port"');

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
  'workspace.mode': WorkspaceMode.default('review'),
  'network.allowedDomains': z.array(Domain).default(DEFAULT_ALLOWED_DOMAINS),
  'network.deniedDomains': z.array(Domain).default([]),
  model: z.string().min(1).default('claude-opus-5-5'),
  'agent.maxTokens': z.number().int().min(256).max(128_000).default(16_000),
  'agent.tokenBudget': z.number().int().min(0).default(2_000_000),
  'agent.commandTimeoutSeconds': z.number().int().min(5).max(3600).default(300),
  'agent.extraHeaders': z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'header names are letters, digits and -'), z.string()).default({}),
  apiBaseUrl: z.union([z.literal(''), z.string().url()]).default(''),
  maxParallelTasks: z.number().int().min(1).max(16).default(2),
});
export type Settings = z.infer<typeof SettingsSchema>;
export type SettingKey = keyof Settings;
export const SETTING_KEYS = Object.keys(SettingsSchema.shape) as SettingKey[];

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
