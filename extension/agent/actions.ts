// What the person can do about a failure, in the words the transcript uses. Kept apart from
// errors.ts, which needs the SDK: the task module imports this at activation, the SDK only later.
export const SET_KEY_ACTION = 'Run "Cowork: Set API Key" (or set ANTHROPIC_API_KEY) and continue the task.';
