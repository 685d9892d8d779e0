// The plan / todo tool: the model keeps a short list of steps with their status, which the panel
// shows as progress. It changes nothing in the guest.
import { z } from 'zod';
import { PlanItem } from '../transcript';
import { ToolInputError, type AgentTool, type ToolContext, type ToolOutcome } from './types';

const Input = z.object({ todos: z.array(PlanItem).min(1).max(50) });

export const planTool: AgentTool = {
  name: 'update_plan',
  definition: {
    name: 'update_plan',
    description:
      'Record your plan for the task as a short list of steps, and update it as you go (mark the step you are on in_progress, finished ones completed). Send the whole list each time. Use it for any task with more than two steps; the person watches it to follow your progress.',
    input_schema: {
      type: 'object',
      properties: {
        todos: {
          type: 'array',
          items: {
            type: 'object',
            properties: { content: { type: 'string', description: 'the step, in a few words' }, status: { type: 'string', enum: ['pending', 'in_progress', 'completed'] } },
            required: ['content', 'status'],
          },
        },
      },
      required: ['todos'],
    },
  },
  mayWrite: false,
  run(raw: unknown, ctx: ToolContext): Promise<ToolOutcome> {
    const parsed = Input.safeParse(raw);
    if (!parsed.success) throw new ToolInputError(`update_plan needs {"todos": [{"content": "...", "status": "pending|in_progress|completed"}]}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    ctx.setPlan(parsed.data.todos);
    const done = parsed.data.todos.filter((t) => t.status === 'completed').length;
    return Promise.resolve({ content: `Plan updated (${done}/${parsed.data.todos.length} done).`, isError: false });
  },
};
