// The one reader of the cowork.* settings (nothing else in extension/ calls getConfiguration), and
// the watch that tells the person when a workspace tried to set what only they may set.
//
// Defence in depth: package.json gives the settings that decide where the key goes, the review
// mode, the egress policy and resources the scope "application" or "machine", so VS Code itself
// drops them from a workspace's settings. This reader does not rely on that: it asks inspect() and
// takes the user's value (globalValue) or our own default, never a workspace value, and merges the
// narrowing lists itself (config/settings.ts, SETTING_SCOPES). VS Code does hand over a workspace
// value in one case we know of: the nested form "cowork": { "apiBaseUrl": … }, whose top-level key
// is no registered setting and so passes VS Code's scope filter.
import * as vscode from 'vscode';
import { effectiveRaw, parseSettings, SETTING_SCOPES, settingsInFile, USER_ONLY_KEYS, type SettingKey, type Settings, type SettingsProblem, type SettingsResult } from '../config/settings';

/** The settings that count: user-only ones from the user, narrowing lists merged, validated. */
export function readSettings(): SettingsResult {
  return readEffective().result;
}

function readEffective(): { result: SettingsResult; ignored: SettingKey[] } {
  const cfg = vscode.workspace.getConfiguration('cowork');
  const { raw, ignored } = effectiveRaw((key) => cfg.inspect(key));
  return { result: parseSettings(raw), ignored };
}

/** Settings a workspace tried to set and Cowork ignored, and where. */
export interface IgnoredSettings {
  /** the file as the person knows it, e.g. ".vscode/settings.json" */
  readonly source: string;
  readonly keys: readonly string[];
}

/** What cowork.internal.effectiveSettings returns (for tests and for a look at what applies). */
export interface EffectiveSettingsReport {
  readonly ok: boolean;
  readonly settings?: Settings;
  readonly problems?: readonly SettingsProblem[];
  readonly ignored: readonly IgnoredSettings[];
  /** the warnings shown to the person so far in this window */
  readonly told: readonly string[];
}

/**
 * Looks at the workspace's settings files when Cowork starts and whenever they or the cowork.*
 * configuration change; for each file and set of ignored settings it logs one line and shows one
 * non-modal warning naming the file and the settings (once per window).
 */
export class WorkspaceSettingsGuard implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private watchers: vscode.Disposable[] = [];
  private readonly seen = new Set<string>();
  private readonly told: string[] = [];
  private last: IgnoredSettings[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly log: vscode.LogOutputChannel) {
    const recheck = (): void => void this.check();
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('cowork')) recheck();
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.watchFiles(recheck)),
    );
    this.watchFiles(recheck);
    recheck();
  }

  private watchFiles(recheck: () => void): void {
    for (const w of this.watchers.splice(0)) w.dispose();
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '.vscode/settings.json'));
      this.watchers.push(w, w.onDidCreate(recheck), w.onDidChange(recheck), w.onDidDelete(recheck));
    }
    const file = vscode.workspace.workspaceFile;
    if (file?.scheme === 'file') {
      const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.joinPath(file, '..'), file.path.split('/').pop()!));
      this.watchers.push(w, w.onDidChange(recheck));
    }
  }

  /** Finds what a workspace sets that only the person may set; logs and warns about anything new. */
  check(): Promise<IgnoredSettings[]> {
    const run = this.queue.then(async () => {
      const found = await this.scan();
      this.last = found;
      for (const f of found) this.tell(f);
      return found;
    });
    this.queue = run.catch((err: unknown) => this.log.warn(`[settings] could not check the workspace's settings: ${String(err)}`));
    return run;
  }

  async report(): Promise<EffectiveSettingsReport> {
    const ignored = await this.check();
    const { result } = readEffective();
    return result.ok ? { ok: true, settings: result.settings, ignored, told: [...this.told] } : { ok: false, problems: result.problems, ignored, told: [...this.told] };
  }

  get ignored(): readonly IgnoredSettings[] {
    return this.last;
  }

  private async scan(): Promise<IgnoredSettings[]> {
    const userOnly = new Set<string>(USER_ONLY_KEYS);
    const files: { uri: vscode.Uri; source: string }[] = [];
    const folders = vscode.workspace.workspaceFolders ?? [];
    for (const folder of folders) {
      const uri = vscode.Uri.joinPath(folder.uri, '.vscode', 'settings.json');
      files.push({ uri, source: folders.length > 1 ? `${folder.name}/.vscode/settings.json` : '.vscode/settings.json' });
    }
    const wsFile = vscode.workspace.workspaceFile;
    if (wsFile && wsFile.scheme !== 'untitled') files.push({ uri: wsFile, source: wsFile.path.split('/').pop()! });
    const found: IgnoredSettings[] = [];
    const named = new Set<string>();
    for (const { uri, source } of files) {
      let text: string;
      try {
        text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
      } catch {
        continue; // no such file
      }
      const keys = settingsInFile(text, uri === wsFile ? 'settings' : undefined).filter((k) => userOnly.has(k));
      if (keys.length) found.push({ source, keys: keys.map((k) => `cowork.${k}`) });
      for (const k of keys) named.add(k);
    }
    // whatever VS Code handed over from the workspace that no file above accounts for
    const handedOver = readEffective().ignored.filter((k) => !named.has(k));
    if (handedOver.length) found.push({ source: 'workspace settings', keys: handedOver.map((k) => `cowork.${k}`) });
    return found;
  }

  private tell(f: IgnoredSettings): void {
    const id = `${f.source}\0${[...f.keys].sort().join(',')}`;
    if (this.seen.has(id)) return;
    this.seen.add(id);
    const reasons = f.keys.map((k) => `${k} (${SETTING_SCOPES[k.replace(/^cowork\./, '') as SettingKey].why})`).join('; ');
    this.log.warn(`[settings] ignored ${f.keys.join(', ')} set in ${f.source}: only user settings may set them. ${reasons}`);
    const message = `Cowork ignored ${f.keys.join(', ')} in ${f.source}: ${f.keys.length === 1 ? 'this setting decides' : 'these settings decide'} where your API key goes, whether changes are reviewed, what the VM may reach or use, so only your user settings can change ${f.keys.length === 1 ? 'it' : 'them'}.`;
    this.told.push(message);
    void vscode.window.showWarningMessage(message, 'Open User Settings').then((pick) => {
      if (pick) void vscode.commands.executeCommand('workbench.action.openSettings', '@ext:cowork-dev.cowork-vscode');
    });
  }

  dispose(): void {
    for (const d of [...this.disposables.splice(0), ...this.watchers.splice(0)]) d.dispose();
  }
}
