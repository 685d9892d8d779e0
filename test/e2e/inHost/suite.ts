// In-host tests: they run inside code-server's real Node extension host, against the real
// extension, with the scripted Messages API server started in the same process.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CoworkApi } from '../../../extension/extension';
import { say, ScriptedModel, text, toolUse } from '../../support/scriptedModel';

export function registerSuite(): void {
  if (process.env.COWORK_EXPECT_UNTRUSTED === '1') return registerUntrusted();
  let api: CoworkApi;
  let model: ScriptedModel;
  const ws = (): string => vscode.workspace.workspaceFolders![0]!.uri.fsPath;

  describe('Cowork in the extension host', () => {
    before(async () => {
      model = new ScriptedModel();
      const baseURL = await model.start();
      await vscode.workspace.getConfiguration('cowork').update('apiBaseUrl', baseURL, vscode.ConfigurationTarget.Global);
    });
    after(async () => {
      await model.close();
    });

    it('activates and hands back its API', async () => {
      const ext = vscode.extensions.getExtension('cowork-dev.cowork-vscode');
      assert.ok(ext, 'the extension is installed');
      api = (await ext.activate()) as CoworkApi;
      assert.ok(ext.isActive);
      assert.equal(typeof api.tasks, 'function');
    });

    it('registers every command it contributes', async () => {
      const ext = vscode.extensions.getExtension('cowork-dev.cowork-vscode')!;
      const pkg = JSON.parse(readFileSync(path.join(ext.extensionPath, 'package.json'), 'utf8')) as { contributes: { commands: { command: string }[] } };
      const registered = new Set(await vscode.commands.getCommands(true));
      const missing = pkg.contributes.commands.map((c) => c.command).filter((c) => !registered.has(c));
      assert.deepEqual(missing, []);
    });

    it('runs a delegated task, accepts selected lines from the diff editor, and Accept All writes the rest', async () => {
      model.play(
        say(text('Editing.'), toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/slugify.py', old_str: 'Hello, World!', new_str: 'Hello, Cowork!' })),
        say(toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/slugify.py', old_str: 'import re\n', new_str: 'import re  # regular expressions\n' })),
        say(toolUse('bash', { command: 'echo note > NOTES.md' })),
        say(text('Done.')),
      );
      const id = await vscode.commands.executeCommand<string>('cowork.delegateTask', 'Change the greeting and add notes');
      assert.ok(id, 'a task was created');
      const tasks = (await api.tasks())!;
      const task = tasks.get(id)!;
      await waitFor(() => task.state === 'idle' || task.state === 'failed', 240_000);
      assert.equal(task.state, 'idle', JSON.stringify(task.transcript.all.filter((e) => e.type === 'error')));
      const review = api.review(id)!;
      await review.refresh();
      assert.deepEqual(review.all.map((c) => `${c.kind} ${c.display}`).sort(), ['added NOTES.md', 'modified slugify.py']);
      const host = path.join(ws(), 'slugify.py');
      assert.doesNotMatch(readFileSync(host, 'utf8'), /Cowork|regular expressions/, 'nothing is written before accept');

      // the panel's view of the changes: a unified diff per text file
      const views = await review.views();
      const slug = views.find((v) => v.display === 'slugify.py')!;
      assert.deepEqual([slug.added, slug.removed], [2, 2]);
      assert.ok(slug.lines.includes('+    print(slugify("Hello, Cowork!"))'), slug.lines.join('\n'));

      // partial accept: open the diff, select the greeting line on the agent's side, accept it
      const change = review.all.find((c) => c.display === 'slugify.py')!;
      await vscode.commands.executeCommand('cowork.internal.openDiff', id, change.path.toString('base64'));
      await waitFor(() => vscode.window.visibleTextEditors.some((e) => e.document.uri.scheme === 'cowork-proposed' && e.document.getText().includes('Hello, Cowork!')), 30_000);
      const proposed = vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme === 'cowork-proposed')!;
      const line = proposed.document.getText().split('\n').findIndex((l) => l.includes('Hello, Cowork!'));
      proposed.selection = new vscode.Selection(line, 0, line, 5);
      await vscode.commands.executeCommand('cowork.review.acceptSelectedRanges');
      const partly = readFileSync(host, 'utf8');
      assert.match(partly, /Hello, Cowork!/, 'the selected hunk reached the host file');
      assert.doesNotMatch(partly, /regular expressions/, 'the hunk outside the selection did not');
      assert.deepEqual(review.all.map((c) => c.display).sort(), ['NOTES.md', 'slugify.py'], 'the rest of the file is still proposed');
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');

      // discard one through the review, accept the rest through Accept All
      const notes = review.all.find((c) => c.display === 'NOTES.md')!;
      await review.discard([notes]);
      assert.deepEqual(review.all.map((c) => c.display), ['slugify.py']);
      await vscode.commands.executeCommand('cowork.acceptAll', id);
      const after = readFileSync(host, 'utf8');
      assert.match(after, /Hello, Cowork!/);
      assert.match(after, /import re {2}# regular expressions/);
      assert.throws(() => readFileSync(path.join(ws(), 'NOTES.md')), /ENOENT/);
      assert.equal(review.count, 0, 'the change set is empty once accepted');
      await task.vm.stop();
    });

    it('in direct mode, writes the agent\'s change at once, lists it for the record, and reverts it', async () => {
      await vscode.workspace.getConfiguration('cowork').update('workspace.mode', 'direct', vscode.ConfigurationTarget.Global);
      try {
        const host = path.join(ws(), 'slugify.py');
        const before = readFileSync(host, 'utf8');
        model.play(say(toolUse('str_replace_based_edit_tool', { command: 'str_replace', path: '/workspace/slugify.py', old_str: 'return text.strip("-")', new_str: 'return text.strip("-")  # direct' })), say(text('Done.')));
        const id = await vscode.commands.executeCommand<string>('cowork.delegateTask', 'Mark the return line');
        const task = (await api.tasks())!.get(id)!;
        assert.equal(task.info.mode, 'direct');
        await waitFor(() => task.state === 'idle' || task.state === 'failed', 240_000);
        const review = api.review(id)!;
        await waitFor(() => readFileSync(host, 'utf8').includes('# direct'), 30_000);
        assert.match(readFileSync(host, 'utf8'), /# direct/, 'the change reached the folder without Accept');
        await review.refresh();
        assert.equal(review.direct?.count, 1, 'Source Control lists the file changed directly');
        assert.equal(review.all.length, 0, 'nothing is left pending');
        const views = await review.views();
        assert.ok(views[0]?.applied && views[0].lines.some((l) => l.includes('# direct')), JSON.stringify(views));
        await review.direct.revert(Buffer.from('slugify.py').toString('base64'));
        assert.equal(readFileSync(host, 'utf8'), before, 'Revert put the person\'s version back');
        assert.equal(review.direct.count, 0);
        await task.vm.stop();
      } finally {
        await vscode.workspace.getConfiguration('cowork').update('workspace.mode', undefined, vscode.ConfigurationTarget.Global);
      }
    });
  });
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
}

/** Workspace Trust: in a folder the person has not trusted, the extension starts nothing. */
function registerUntrusted(): void {
  describe('Cowork in an untrusted workspace', () => {
    it('runs nothing: no task, no VM, no helper', async () => {
      assert.equal(vscode.workspace.isTrusted, false, 'the workspace is untrusted');
      const ext = vscode.extensions.getExtension('cowork-dev.cowork-vscode')!;
      const api = (await ext.activate()) as CoworkApi;
      assert.equal(await vscode.commands.executeCommand('cowork.delegateTask', 'try to run'), undefined);
      assert.equal(await api.tasks(), undefined, 'no task manager in an untrusted workspace');
      await vscode.commands.executeCommand('cowork.startVm');
      assert.ok(api.workspaceVm() === undefined || api.workspaceVm()!.current.state === 'stopped', 'no VM was started');
    });
  });
}
