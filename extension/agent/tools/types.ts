import type Anthropic from '@anthropic-ai/sdk';
import type { GuestSandbox } from '../../guest/sandbox';
import type { PlanItem } from '../transcript';

export interface ToolContext {
  readonly sandbox: GuestSandbox;
  readonly signal: AbortSignal;
  /** live output of a running command, for the panel */
  readonly onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
  readonly setPlan: (items: PlanItem[]) => void;
  readonly commandTimeoutMs: number;
}

export interface ToolOutcome {
  readonly content: string;
  readonly isError: boolean;
  readonly exitCode?: number | null;
  readonly durationMs?: number;
}

export interface AgentTool {
  readonly name: string;
  readonly definition: Anthropic.ToolUnion;
  /** whether a call may change files (the change set is refreshed after those) */
  readonly mayWrite: boolean;
  run(input: unknown, ctx: ToolContext): Promise<ToolOutcome>;
}

/** A tool failure the model should see (is_error), not a crash. */
export class ToolInputError extends Error {}
