// The demo's VS Code: a real code-server with the packaged extension on a copy of the sample
// workspace. With --scripted (or without an API key) the model is the scripted server, and the
// panel says so. Runs until Ctrl-C, then stops everything it started.
import { demoResponder } from '../../test/support/demoConversation';
import { ScriptedModel } from '../../test/support/scriptedModel';
import { packageVsix, startCodeServer } from '../../test/e2e/harness';

async function main(): Promise<void> {
  const scripted = process.argv.includes('--scripted');
  // the product's defaults, the warm VM among them (the test harness turns it off for the suites)
  const settings: Record<string, unknown> = { 'workbench.colorTheme': 'Default Dark Modern', 'cowork.vm.warm': true };
  const env: Record<string, string> = {};
  let model: ScriptedModel | undefined;
  if (scripted) {
    model = new ScriptedModel();
    model.fallback = demoResponder;
    settings['cowork.apiBaseUrl'] = await model.start();
    env.ANTHROPIC_API_KEY = 'sk-ant-scripted-demo-no-model';
    env.COWORK_SCRIPTED_DEMO = '1';
  } else if (process.env.ANTHROPIC_BASE_URL) {
    settings['cowork.apiBaseUrl'] = process.env.ANTHROPIC_BASE_URL;
  }
  console.log('Packaging the extension …');
  const vsix = packageVsix();
  const server = await startCodeServer({ vsix, settings, env });
  console.log(`\nCowork demo${scripted ? ' (scripted: no model, answers come from a local script)' : ''} is ready:\n\n    ${server.url}/?folder=${encodeURIComponent(server.workspace)}\n`);
  if (!scripted && !process.env.ANTHROPIC_API_KEY) console.log('No ANTHROPIC_API_KEY is set: run "Cowork: Set API Key" in VS Code, or restart with `npm run demo -- --scripted`.');
  console.log('Open the Cowork icon in the activity bar and delegate a task. Ctrl-C stops the demo.');
  const stop = async (): Promise<void> => {
    await server.stop();
    await model?.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
