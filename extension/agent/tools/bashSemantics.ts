// How the bash tool's calls behave, for the model (no imports: the system prompt is built at activation).
/**
 * What the model is told about the shell (the tool is Anthropic's bash_20250124, whose description
 * is fixed, so this goes into the system prompt's line on tools).
 */
export const BASH_SEMANTICS =
  'Each `bash` call is a new shell: the working directory and exported variables carry over, shell functions and aliases do not. ' +
  'A background job started plainly (`cmd &`) ends when the call ends; one started with `nohup` or `setsid` (e.g. a dev server: `nohup npm run dev > /tmp/dev.log 2>&1 &`) keeps running for later calls until the task is stopped. ' +
  'A call that times out or is stopped is killed with everything it started.';
