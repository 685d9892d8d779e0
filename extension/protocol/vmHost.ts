// The one protocol between the extension host and the vm-host helper: JSON lines on the helper's
// stdin (requests) and stdout (responses and events). Both ends validate with these schemas.
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

export const Accelerator = z.enum(['auto', 'kvm', 'hvf', 'whpx', 'tcg']);
export type Accelerator = z.infer<typeof Accelerator>;
export type ResolvedAccelerator = Exclude<Accelerator, 'auto'>;


/**
 * Debian's package name grammar (Policy §5.6.1): lower-case letters, digits, '+', '-' and '.', at
 * least two characters, starting with a letter or digit. Nothing else reaches apt: no option
 * ("-o…"), no version or release pin ("=", "/"), no glob, no path to a .deb.
 */
export const DEBIAN_PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;
export const GUEST_LAYER_LIMITS = { packages: 64, nameChars: 100, setupBytes: 16 * 1024 } as const;
export const DebianPackageName = z
  .string()
  .max(GUEST_LAYER_LIMITS.nameChars, `a package name has at most ${GUEST_LAYER_LIMITS.nameChars} characters`)
  .regex(DEBIAN_PACKAGE_NAME, "is not a Debian package name (lower-case letters, digits, '+', '-', '.'; starting with a letter or digit)");

/**
 * A derived image layer: the base image plus these Debian packages and this script (run as root
 * in the layer's build chroot, once, at build time). Cached by its hash. The extension sends only
 * what the person consented to (extension/config/guestConsent.ts) or configured (machine setting).
 */
export const GuestLayerSpec = z
  .object({
    packages: z.array(DebianPackageName).max(GUEST_LAYER_LIMITS.packages, `at most ${GUEST_LAYER_LIMITS.packages} packages`).describe('extra Debian packages'),
    setup: z
      .string()
      .refine((s) => Buffer.byteLength(s) <= GUEST_LAYER_LIMITS.setupBytes, `the setup script has at most ${GUEST_LAYER_LIMITS.setupBytes} bytes`)
      .refine((s) => !s.includes('\0'), 'the setup script must not contain NUL bytes')
      .optional()
      .describe('shell script run as root in the layer at build time (never at task time)'),
  })
  .strict();
export type GuestLayerSpec = z.infer<typeof GuestLayerSpec>;

export const VmStartParams = z.object({
  vmId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'vmId must be 1–64 letters, digits, _ or -'),
  workspace: z.string().min(1).describe('absolute host path shared read-only at /workspace'),
  sessionDisk: z.string().min(1).describe('qcow2 file holding the overlay upper dir; created when missing'),
  cpus: z.number().int().min(1).max(64),
  memoryMiB: z.number().int().min(256).max(1024 * 1024),
  diskGiB: z.number().int().min(1).max(4096),
  accelerator: Accelerator,
  bootTimeoutMs: z.number().int().positive().optional(),
  guestLayer: GuestLayerSpec.optional().describe('boot from the base image plus this derived layer (built on first use)'),
  cacheDisk: z.string().min(1).optional().describe("this workspace's package-cache disk (qcow2, created when missing; never shared across workspaces)"),
  cacheDiskGiB: z.number().int().min(1).max(4096).optional(),
});
export type VmStartParams = z.infer<typeof VmStartParams>;

export const VmConnectInfo = z.object({
  vmId: z.string(),
  host: z.string(),
  port: z.number().int(),
  username: z.string(),
  privateKey: z.string().describe('OpenSSH private key of the client, unique to this VM'),
  hostKey: z.string().describe('the guest sshd public key, "ssh-ed25519 AAAA…": pin it'),
  accelerator: z.enum(['kvm', 'hvf', 'whpx', 'tcg']),
  bootMs: z.number(),
  imageKey: z.string(),
  /** set when the VM booted a derived layer; built: this start built it */
  guestLayer: z.object({ key: z.string(), built: z.boolean() }).optional(),
  /** false when the cache disk was asked for but is in use by another VM (the task runs without it) */
  cacheDiskAttached: z.boolean().optional(),
  cpus: z.number().int(),
  memoryMiB: z.number().int(),
  sandbox: z.object({ user: z.string().regex(/^[a-z][a-z0-9-]{1,30}$/), uid: z.number().int().min(1000) }),
  /** one line for the person when the VM runs differently than asked, e.g. the accelerator fallback */
  notice: z.string().optional(),
});
export type VmConnectInfo = z.infer<typeof VmConnectInfo>;

export const VmStateName = z.enum(['stopped', 'booting', 'ready', 'stopping', 'failed']);
export type VmStateName = z.infer<typeof VmStateName>;

export const ImageInfo = z.object({ key: z.string(), kernelVersion: z.string(), built: z.boolean(), accelerator: z.string().optional() });

export const VmStats = z.object({
  vmId: z.string(),
  state: VmStateName,
  pid: z.number().optional(),
  rssBytes: z.number().optional(),
  cpuSeconds: z.number().optional(),
  sessionDiskBytes: z.number().optional(),
  cacheDiskBytes: z.number().optional(),
  /** the package-cache disk this VM holds (a start asking for it while held runs without it) */
  cacheDisk: z.string().optional(),
});

/** One prerequisite as `Cowork: Check Setup` and `vm-host.js --doctor` show it. */
export const DoctorLine = z.object({
  id: z.string(),
  ok: z.boolean(),
  /** a failed required line means no VM can start; a failed optional one costs speed or comfort */
  required: z.boolean(),
  label: z.string(),
  detail: z.string(),
  /** what to do about it (only on a failed line) */
  fix: z.string().optional(),
});
export type DoctorLine = z.infer<typeof DoctorLine>;

/** "✓ label: detail", or "✗ label: detail — fix: …" (a failed optional line says "(optional)"). */
export function formatDoctorLine(l: DoctorLine): string {
  if (l.ok) return `✓ ${l.label}: ${l.detail}`;
  return `✗ ${l.label}${l.required ? '' : ' (optional)'}: ${l.detail}${l.fix ? ` — fix: ${l.fix}` : ''}`;
}

export const DoctorParams = z.object({
  /** boot each accelerator again even when a cached verdict exists */
  reprobe: z.boolean().optional(),
  /** where the session disks live (the extension's storage), for the free-space line */
  sessionsDir: z.string().optional(),
});

/** name → [params, result] */
export const Requests = {
  hello: [z.object({ version: z.number() }), z.object({ version: z.number(), platform: z.string(), arch: z.string(), accelerators: z.array(z.string()), pid: z.number() })],
  'image.ensure': [z.object({ force: z.boolean().optional() }), ImageInfo],
  'vm.start': [VmStartParams, VmConnectInfo],
  'vm.stop': [z.object({ vmId: z.string(), graceMs: z.number().int().nonnegative().optional() }), z.object({ stopped: z.boolean() })],
  'vm.list': [z.object({}), z.object({ vms: z.array(VmStats) })],
  'disks.cleanup': [z.object({ dir: z.string(), keep: z.array(z.string()) }), z.object({ removed: z.array(z.string()), freedBytes: z.number() })],
  shutdown: [z.object({}), z.object({})],
  doctor: [DoctorParams, z.object({ ok: z.boolean(), lines: z.array(DoctorLine) })],
} as const;
export type RequestName = keyof typeof Requests;
export type RequestParams<N extends RequestName> = z.input<(typeof Requests)[N][0]>;
export type RequestResult<N extends RequestName> = z.infer<(typeof Requests)[N][1]>;

export const RequestLine = z.object({ id: z.number().int(), method: z.string(), params: z.unknown() });

export const ErrorBody = z.object({ code: z.string(), message: z.string() });
export const ResponseLine = z.union([
  z.object({ id: z.number().int(), ok: z.literal(true), result: z.unknown() }),
  z.object({ id: z.number().int(), ok: z.literal(false), error: ErrorBody }),
]);

export const VmHostEvent = z.discriminatedUnion('event', [
  z.object({ event: z.literal('image.progress'), phase: z.string(), message: z.string(), fraction: z.number() }),
  z.object({ event: z.literal('vm.state'), vmId: z.string(), state: VmStateName, detail: z.string().optional() }),
  z.object({ event: z.literal('vm.console'), vmId: z.string(), line: z.string() }),
  /** boot progress: the guest's current step (from its COWORK-STEP console markers) and the time-out in force */
  z.object({ event: z.literal('vm.progress'), vmId: z.string(), accelerator: z.string(), step: z.string(), elapsedMs: z.number(), timeoutMs: z.number() }),
  /** one line for the person, e.g. "KVM is present but QEMU could not use it: … — running emulated, slower" */
  z.object({ event: z.literal('vm.notice'), vmId: z.string(), message: z.string() }),
  z.object({ event: z.literal('log'), level: z.enum(['trace', 'debug', 'info', 'warn', 'error']), message: z.string() }),
]);
export type VmHostEvent = z.infer<typeof VmHostEvent>;
export const EventLine = z.object({ event: z.string() }).passthrough();
