import { bashTool } from './bashTool';
import { editorTool } from './editorTool';
import { planTool } from './planTool';
import type { AgentTool } from './types';

/** The tools the model gets. None of them can switch the sandbox or the network policy off. */
export const AGENT_TOOLS: readonly AgentTool[] = [bashTool, editorTool, planTool];
