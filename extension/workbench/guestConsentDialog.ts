// The glue of the guest-setup consent (extension/config/guestConsent.ts): a modal that lists every
// package and the script's full text, the answer kept in the extension's global state.
import * as vscode from 'vscode';
import type { ConsentPrompt } from '../config/guestConsent';
import { guestLayerResolver } from '../config/guestConsent';
import type { GuestLayerSpec } from '../protocol/vmHost';
import type { Logger } from '../session/workspaceVm';
import { readSettings } from './settings';

export const ALLOW_GUEST_SETUP = 'Build and Use';
export const DECLINE_GUEST_SETUP = 'Not for This Workspace';

export const modalConsentPrompt: ConsentPrompt = async (q) => {
  const pick = await vscode.window.showWarningMessage(
    q.changed ? 'Cowork: this workspace changed its guest setup. Build and use it?' : 'Cowork: this workspace asks for a custom guest image. Build and use it?',
    { modal: true, detail: q.detail },
    ALLOW_GUEST_SETUP,
    DECLINE_GUEST_SETUP,
  );
  return pick === ALLOW_GUEST_SETUP;
};

export function workspaceGuestLayer(context: vscode.ExtensionContext, workspace: string, log: Logger, prompt: ConsentPrompt = modalConsentPrompt): () => Promise<GuestLayerSpec | undefined> {
  return guestLayerResolver({
    workspace,
    store: context.globalState,
    prompt,
    extraPackages: () => {
      const s = readSettings();
      return s.ok ? s.settings['guest.extraPackages'] : [];
    },
    notify: (message) => {
      log.warn(`[vm] ${message}`);
      void vscode.window.showWarningMessage(`Cowork: ${message}`);
    },
  });
}
