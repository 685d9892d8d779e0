// Consent to a workspace's guest setup. The repository declares it (.cowork/guest.json), so it is
// applied only after the person saw exactly what will be installed and run (every package name and
// the script's full text) and said yes; a changed file asks again. The answer is stored per
// workspace in the extension's global state (keyed by a hash of the workspace path), never in the
// workspace, where the agent or the repository could write a "yes". A "no" is remembered for the
// same content too (no question at every task), and the task then runs on the image without it.
// No `vscode` here: the glue passes the state and the dialog in (test/unit/guestConsent.test.ts).
import { createHash } from 'node:crypto';
import type { GuestLayerSpec } from '../protocol/vmHost';
import { GUEST_SETUP_FILE, combineLayer, guestSetupHash, readGuestSetup, type GuestSetupRead } from './guestSetup';

/** The part of vscode's Memento (context.globalState) used here. */
export interface ConsentStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

export interface ConsentQuestion {
  readonly workspace: string;
  readonly spec: GuestLayerSpec;
  /** true when an earlier version of the file was answered */
  readonly changed: boolean;
  /** the dialog's text: what will be installed and run, and where */
  readonly detail: string;
}

/** Shows the question modally; true = build and use it. */
export type ConsentPrompt = (q: ConsentQuestion) => Promise<boolean>;

interface Stored {
  readonly hash: string;
  readonly allowed: boolean;
}

export function consentKey(workspace: string): string {
  return `cowork.guestSetupConsent.${createHash('sha256').update(workspace).digest('hex').slice(0, 32)}`;
}

export function consentDetail(spec: GuestLayerSpec, changed: boolean): string {
  const lines = [
    changed ? `This workspace's ${GUEST_SETUP_FILE} changed since you last answered.` : `This workspace's ${GUEST_SETUP_FILE} asks for a custom guest image.`,
    '',
    `Debian packages to install (${spec.packages.length}): ${spec.packages.length ? spec.packages.join(', ') : 'none'}`,
  ];
  if (spec.setup) {
    lines.push(
      '',
      'Setup script, run as root while the image layer is built — in a chroot on this computer, which is not a sandbox: allow it only if you would run it yourself:',
      '',
      spec.setup,
    );
  } else {
    lines.push('', 'No setup script.');
  }
  lines.push('', 'The layer is built once (a minute or more) and reused; tasks still run in the sandbox on a read-only root.');
  return lines.join('\n');
}

export type ConsentOutcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly message: string }
  | { readonly kind: 'allowed'; readonly spec: GuestLayerSpec; readonly asked: boolean }
  | { readonly kind: 'declined'; readonly spec: GuestLayerSpec; readonly asked: boolean };

/** The workspace file's spec if the person allows it (asking when this content was never answered). */
export async function consentToGuestSetup(workspace: string, read: GuestSetupRead, store: ConsentStore, prompt: ConsentPrompt): Promise<ConsentOutcome> {
  if (read.kind !== 'ok') return read;
  const hash = guestSetupHash(read.spec);
  const key = consentKey(workspace);
  const prev = store.get<Stored>(key);
  if (prev && prev.hash === hash) return { kind: prev.allowed ? 'allowed' : 'declined', spec: read.spec, asked: false };
  const changed = prev !== undefined;
  const allowed = await prompt({ workspace, spec: read.spec, changed, detail: consentDetail(read.spec, changed) });
  await store.update(key, { hash, allowed } satisfies Stored);
  return { kind: allowed ? 'allowed' : 'declined', spec: read.spec, asked: true };
}

export interface GuestLayerResolverDeps {
  readonly workspace: string;
  readonly store: ConsentStore;
  readonly prompt: ConsentPrompt;
  /** cowork.guest.extraPackages (machine-scoped) */
  readonly extraPackages: () => readonly string[];
  /** one line for the person (an invalid or declined file) */
  readonly notify: (message: string) => void;
}

/**
 * What a VM start boots: the consented workspace spec plus the machine's extra packages, or
 * undefined for the plain image. Concurrent starts share one question.
 */
export function guestLayerResolver(deps: GuestLayerResolverDeps): () => Promise<GuestLayerSpec | undefined> {
  let pending: Promise<ConsentOutcome> | undefined;
  return async () => {
    pending ??= (async () => consentToGuestSetup(deps.workspace, await readGuestSetup(deps.workspace), deps.store, deps.prompt))().finally(() => (pending = undefined));
    const outcome = await pending;
    if (outcome.kind === 'invalid') deps.notify(`${outcome.message} The task runs without the workspace's guest setup.`);
    if (outcome.kind === 'declined' && outcome.asked) deps.notify(`The workspace's guest setup was not applied (you declined). Change ${GUEST_SETUP_FILE} to be asked again.`);
    return combineLayer(outcome.kind === 'allowed' ? outcome.spec : undefined, deps.extraPackages());
  };
}
