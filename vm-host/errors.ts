/** Errors of the vm-host helper. `code` is what callers branch on; `message` is for the person. */
export type VmHostErrorCode =
  | 'missing-tool'
  | 'image-build-failed'
  | 'image-corrupt'
  | 'bad-request'
  | 'bad-config'
  | 'accelerator-unavailable'
  | 'accelerator-unusable'
  | 'workspace-missing'
  | 'vm-not-found'
  | 'vm-exists'
  | 'boot-failed'
  | 'boot-timeout'
  | 'cancelled'
  | 'internal';

export class VmHostError extends Error {
  constructor(
    readonly code: VmHostErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VmHostError';
  }
}
