/** Errors of the guest connection. `code` is what callers branch on. */
export type GuestErrorCode = 'connect-failed' | 'host-key-mismatch' | 'disconnected' | 'agent-failed' | 'aborted' | 'file-error' | 'vm-host';

export class GuestError extends Error {
  constructor(
    readonly code: GuestErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GuestError';
  }
}
