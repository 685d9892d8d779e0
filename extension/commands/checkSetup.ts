// Cowork: Check Setup — one line per prerequisite with ✓/✗ and the fix. The helper checks the
// host (QEMU, qemu-img, /dev/kvm, the guest image or the tools to build it, free disk space, each
// accelerator probed with a tiny boot; vm-host/doctor.ts); this adds the extension's own lines:
// the API key is present (never shown) and the egress proxy can listen on loopback. The lines go
// to the log and to a quick pick. It runs its own short-lived helper, so it works whatever state
// the window's VMs are in.
import * as net from 'node:net';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Commands, SECRET_API_KEY } from '../ids';
import { cacheDiskBytes, cacheDiskPath } from '../session/cacheDisk';
import { formatDoctorLine, type DoctorLine } from '../protocol/vmHost';
import { VmHelper } from '../session/vmHelper';
import type { Logger } from '../session/workspaceVm';

export interface CheckSetupDeps {
  readonly context: vscode.ExtensionContext;
  readonly log: vscode.LogOutputChannel;
}

export function apiKeyLine(secret: string | undefined, env: string | undefined): DoctorLine {
  const base = { id: 'api-key', required: true, label: 'API key' } as const;
  if (secret) return { ...base, ok: true, detail: 'set in VS Code secret storage (not shown)' };
  if (env) return { ...base, ok: true, detail: 'taken from ANTHROPIC_API_KEY (not shown)' };
  return { ...base, ok: false, detail: 'not set: tasks cannot reach the model', fix: 'run "Cowork: Set API Key" (or set ANTHROPIC_API_KEY)' };
}

/** The egress proxy listens on 127.0.0.1 ports it picks: can this process listen there at all? */
export function proxyListenLine(): Promise<DoctorLine> {
  const base = { id: 'egress-proxy', required: true, label: 'egress proxy' } as const;
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err) => resolve({ ...base, ok: false, detail: `cannot listen on 127.0.0.1: ${err.message}`, fix: 'allow this program to listen on loopback (firewall, sandbox policy)' }));
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve({ ...base, ok: true, detail: `can listen on 127.0.0.1 (tried port ${port})` }));
    });
  });
}

export async function checkSetup(deps: CheckSetupDeps, reprobe = false): Promise<DoctorLine[]> {
  const { context, log } = deps;
  const logger: Logger = { trace: (m) => log.trace(m), debug: (m) => log.debug(m), info: (m) => log.info(m), warn: (m) => log.warn(m), error: (m) => log.error(m) };
  const helper = new VmHelper({ helperPath: path.join(context.extensionPath, 'dist', 'vm-host.js'), log: logger });
  const lines: DoctorLine[] = [];
  try {
    const sessionsDir = path.join((context.storageUri ?? context.globalStorageUri).fsPath, 'sessions');
    lines.push(...(await helper.doctor({ reprobe, sessionsDir })).lines);
  } catch (err) {
    lines.push({ id: 'helper', ok: false, required: true, label: 'vm-host helper', detail: `did not answer: ${err instanceof Error ? err.message : String(err)}`, fix: 'see "Cowork: Show Log"; reinstall the extension if dist/vm-host.js is missing' });
  } finally {
    await helper.dispose();
  }
  lines.push(apiKeyLine(await context.secrets.get(SECRET_API_KEY), process.env.ANTHROPIC_API_KEY));
  lines.push(await proxyListenLine());
  const ws = vscode.workspace.workspaceFolders?.[0];
  if (ws?.uri.scheme === 'file') {
    // informational: the workspace's npm/pip cache (session/cacheDisk.ts); Clean Up clears it
    const bytes = await cacheDiskBytes(cacheDiskPath(context.globalStorageUri.fsPath, ws.uri.fsPath));
    lines.push({ id: 'package-cache', ok: true, required: false, label: 'Package cache (npm, pip) of this workspace', detail: bytes ? `${(bytes / 1024 / 1024).toFixed(1)} MiB on disk, reused by its next tasks ("Cowork: Clean Up" clears it)` : 'empty (filled by the first task that installs packages)' });
  }
  return lines;
}

export function registerCheckSetup(deps: CheckSetupDeps): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(Commands.checkSetup, async (opts?: { reprobe?: boolean; quiet?: boolean }) => {
      const lines = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Cowork: checking the setup (the first check boots a tiny VM per accelerator)…' }, () => checkSetup(deps, opts?.reprobe === true));
      const failed = lines.filter((l) => !l.ok);
      const requiredFailed = failed.filter((l) => l.required);
      deps.log.info(`[setup] Check Setup:\n${lines.map(formatDoctorLine).join('\n')}`);
      if (opts?.quiet) return lines;
      const title = requiredFailed.length ? `Cowork: ${requiredFailed.length} problem(s) stop the VM from starting` : failed.length ? 'Cowork can start (optional items below)' : 'Cowork: everything needed is in place';
      const items = lines.map((l) => ({ label: `${l.ok ? '$(pass)' : l.required ? '$(error)' : '$(warning)'} ${l.label}`, description: l.detail, detail: l.ok ? undefined : l.fix ? `Fix: ${l.fix}` : undefined, line: l }));
      void vscode.window.showQuickPick(items, { title, matchOnDescription: true, matchOnDetail: true }).then((pick) => {
        if (pick?.line.id === 'api-key' && !pick.line.ok) void vscode.commands.executeCommand(Commands.setApiKey);
        else if (pick?.line.fix) void vscode.env.clipboard.writeText(pick.line.fix).then(() => vscode.window.showInformationMessage(`Cowork: copied the fix for "${pick.line.label}".`));
      });
      return lines;
    }),
  ];
}
