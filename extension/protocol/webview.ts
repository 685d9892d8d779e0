// The one protocol between the extension host and the side-panel webview. The host validates what
// the webview sends (it is a web page), and the webview validates what it receives.
import { z } from 'zod';
import { VmStateName } from './vmHost';

export const VmStatusView = z.object({
  state: VmStateName,
  accelerator: z.string().optional(),
  detail: z.string().optional(),
  bootMs: z.number().optional(),
  imageProgress: z.object({ message: z.string(), fraction: z.number() }).optional(),
});
export type VmStatusView = z.infer<typeof VmStatusView>;

export const HostToWebview = z.discriminatedUnion('type', [
  z.object({ type: z.literal('state'), vm: VmStatusView, trusted: z.boolean(), settingsProblem: z.string().nullable() }),
  z.object({ type: z.literal('commandResult'), command: z.string(), output: z.string(), exit: z.string() }),
]);
export type HostToWebview = z.infer<typeof HostToWebview>;

export const WebviewToHost = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('startVm') }),
  z.object({ type: z.literal('stopVm') }),
  z.object({ type: z.literal('delegate'), prompt: z.string().max(100_000) }),
  z.object({ type: z.literal('runCommand'), command: z.string().min(1).max(10_000) }),
]);
export type WebviewToHost = z.infer<typeof WebviewToHost>;
