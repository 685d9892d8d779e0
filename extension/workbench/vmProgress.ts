// VM boot (and, the first time, the guest image build) as a cancellable progress notification,
// plus a one-time explanation of what the first run downloads and builds, and where it goes.
import * as vscode from 'vscode';
import type { WorkspaceVm } from '../session/workspaceVm';

// Measured on Debian 12 (docs/benchmarks.md): the image is ~135 MiB of root filesystem plus a
// ~6 MiB boot layer; the packages come from the Debian mirror the host's apt uses.
const FIRST_RUN =
  'Cowork is building its Linux guest image: this happens once (and again when a new version changes the recipe). ' +
  'It downloads the Debian packages listed in the extension\'s image recipe (openssh-server, bubblewrap, python3, git, curl and their dependencies) from your Debian mirror, ' +
  'and keeps a ~140 MiB image in ~/.cache/cowork-vscode. It takes one to a few minutes; later starts reuse it. Each task also gets a session disk (sparse, grows with its changes) in the extension\'s storage.';

let explained = false;

/**
 * Shows a notification with progress while `vm` boots; Cancel calls `cancel` (stop the task, or
 * the VM). One notification per boot, closed when the VM is ready, failed or stopped.
 */
export function trackVmProgress(vm: WorkspaceVm, title: string, cancel: () => void, log: vscode.LogOutputChannel): vscode.Disposable {
  let active: { done(): void; report(message: string, fraction?: number): void } | undefined;
  const sub = vm.onStatus((s) => {
    if (s.state !== 'booting') {
      active?.done();
      active = undefined;
      return;
    }
    if (!active) {
      void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Cowork: ${title}`, cancellable: true }, (progress, token) => {
        let reported = 0;
        return new Promise<void>((resolve) => {
          active = {
            done: resolve,
            report: (message, fraction) => {
              const pct = fraction === undefined ? reported : Math.round(fraction * 100);
              progress.report({ message, increment: Math.max(0, pct - reported) });
              reported = Math.max(reported, pct);
            },
          };
          token.onCancellationRequested(() => {
            log.info(`[vm] ${title}: cancelled by the person`);
            active = undefined;
            resolve();
            cancel();
          });
        });
      });
    }
    const p = s.imageProgress;
    if (p && p.fraction < 1) active?.report(p.message, p.fraction * 0.9);
    else active?.report('booting the VM…', 0.95);
    if (p?.phase === 'packages' && !explained) {
      explained = true;
      log.info(`[vm] ${FIRST_RUN}`);
      void vscode.window.showInformationMessage(FIRST_RUN);
    }
  });
  return {
    dispose: () => {
      active?.done();
      sub.dispose();
    },
  };
}
