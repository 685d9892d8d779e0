// The events of a task's transcript: persisted by the engine, sent to the webview. Pure schema (no
// Node imports) so the webview bundle can validate them too.
import { z } from 'zod';

export const PlanItem = z.object({ content: z.string().min(1).max(500), status: z.enum(['pending', 'in_progress', 'completed']) });
export type PlanItem = z.infer<typeof PlanItem>;

export const Usage = z.object({ input: z.number(), output: z.number(), cacheWrite: z.number(), cacheRead: z.number() });
export type Usage = z.infer<typeof Usage>;

/**
 * An image the person pasted into the prompt, sent to the model as an image block. The API takes
 * at most 5 MB of base64 per image (3.75 MB decoded); four per message keep a transcript line and
 * the panel's messages small.
 */
export const IMAGE_LIMITS = { count: 4, decodedBytes: 3_750_000 } as const;
export const IMAGE_MEDIA_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'] as const;
export const PromptImage = z.object({
  mediaType: z.enum(IMAGE_MEDIA_TYPES),
  data: z
    .string()
    .min(1)
    .max(Math.ceil(IMAGE_LIMITS.decodedBytes / 3) * 4, `an image may be at most ${IMAGE_LIMITS.decodedBytes / 1_000_000} MB`)
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64'),
});
export type PromptImage = z.infer<typeof PromptImage>;
export const PromptImages = z.array(PromptImage).max(IMAGE_LIMITS.count, `at most ${IMAGE_LIMITS.count} images per message`);

const base = { at: z.number() };
export const TranscriptEvent = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('user'), text: z.string(), images: PromptImages.optional() }),
  /** one assistant message as the API returned it (the source of truth for continuing) */
  z.object({ ...base, type: z.literal('assistant'), content: z.array(z.record(z.string(), z.unknown())) }),
  z.object({ ...base, type: z.literal('tool_result'), toolUseId: z.string(), name: z.string(), content: z.string(), isError: z.boolean(), exitCode: z.number().nullable().optional(), durationMs: z.number().optional() }),
  z.object({ ...base, type: z.literal('plan'), items: z.array(PlanItem) }),
  z.object({ ...base, type: z.literal('usage'), usage: Usage, costUsd: z.number() }),
  z.object({ ...base, type: z.literal('error'), message: z.string(), action: z.string().optional() }),
  z.object({ ...base, type: z.literal('stopped'), reason: z.string() }),
  z.object({ ...base, type: z.literal('done') }),
]);
export type TranscriptEvent = z.infer<typeof TranscriptEvent>;

