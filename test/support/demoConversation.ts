// A canned conversation for the scripted demo and the browser end-to-end test: whatever the
// prompt, the "model" plans, looks around with bash, tries the network (one allowed registry, one
// blocked host), edits slugify.py with the editor tool, runs it, and summarises. Each turn reacts
// to the request it gets, so it can run any number of times.
import { say, text, toolUse, type ScriptTurn } from './scriptedModel';

export function demoConversation(): ScriptTurn[] {
  return [
    say(text('I will look at the project first, then make `slugify` handle accents.'), toolUse('update_plan', { todos: [{ content: 'Read slugify.py', status: 'in_progress' }, { content: 'Handle accents', status: 'pending' }, { content: 'Run it', status: 'pending' }] })),
    say(toolUse('bash', { command: 'ls -la && cat slugify.py' })),
    say(text('Let me check whether the network is reachable from here.'), toolUse('bash', { command: 'curl -sS -m 10 -o /dev/null -w "%{http_code}\\n" http://blocked.example/ || true' })),
    say(toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/slugify.py', old_str: 'import re\n', new_str: 'import re\nimport unicodedata\n' })),
    say(toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/slugify.py', old_str: '    text = text.strip().lower()\n', new_str: '    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()\n    text = text.strip().lower()\n' })),
    say(toolUse('update_plan', { todos: [{ content: 'Read slugify.py', status: 'completed' }, { content: 'Handle accents', status: 'completed' }, { content: 'Run it', status: 'in_progress' }] })),
    say(toolUse('bash', { command: 'python3 -c "from slugify import slugify; print(slugify(\'Crème Brûlée, déjà vu!\'))"' })),
    say(text('Done. `slugify` now folds accents to ASCII (NFKD), so "Crème Brûlée, déjà vu!" becomes `creme-brulee-deja-vu`. The network check to blocked.example was refused by the proxy, as expected. Review the change to **slugify.py** in the Source Control view.')),
  ];
}

/** For the scripted demo: each request gets the turn of the demo its conversation has reached. */
export function demoResponder(req: { body: { messages: { role: string }[] } }): ScriptTurn {
  const turns = demoConversation();
  const sinceLastPrompt = req.body.messages.filter((m) => m.role === 'assistant').length % turns.length;
  return turns[sinceLastPrompt]!;
}
