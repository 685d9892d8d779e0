// Every command the agent runs goes through here: into the task's one sandbox (bubblewrap as the
// task's unprivileged sandbox user, its own namespaces with no network but the egress proxy, a
// read-only root, only /workspace and a private tmp writable, the seccomp filter built into the
// image), each command in its own session and cgroup with its limits. There is no other way for
// the model to run a command, and nothing here can be switched off by the model.
import { posix } from 'node:path';
import type { ExtraCa } from '../config/extraCa';
import type { CgroupLimits, SandboxRef } from './agentProtocol';
import type { ExecOptions, ExecResult } from './guestAgent';
import type { GuestVm } from './guestVm';

export const SECCOMP_FILTER = '/usr/local/lib/cowork/seccomp.bpf';
export const SECCOMP_FD = 10;
/** The task's executor inside its sandbox (pid 1 there), and its socket to the guest agent. */
export const SANDBOX_EXEC = '/usr/local/lib/cowork/sandbox-exec';
export const CONTROL_FD = 11;
export const PROXY_HTTP = 'http://127.0.0.1:3128';
export const PROXY_SOCKS = 'socks5h://127.0.0.1:1080';
/**
 * cowork.network.extraCaCertificates in the guest: written by root (installExtraCa), read-only in
 * the sandbox. extra.pem holds only the setting's certificates (Node adds them to its own list);
 * bundle.pem is Debian's bundle plus them, for the clients that take one file instead of the
 * system's (OpenSSL's SSL_CERT_FILE, Python's requests and pip, curl, git).
 */
export const EXTRA_CA_DIR = '/run/cowork/ca';
export const EXTRA_CA_FILE = `${EXTRA_CA_DIR}/extra.pem`;
export const CA_BUNDLE_FILE = `${EXTRA_CA_DIR}/bundle.pem`;
const DEBIAN_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export interface SandboxSpec {
  readonly user: string;
  readonly uid: number;
  /** guest resources the limits are derived from */
  readonly cpus: number;
  readonly memoryMiB: number;
  /** the extra CA certificates are installed in the guest (installExtraCa): bind them, point the clients at them */
  readonly extraCa?: boolean;
}

export const SANDBOX_LIMITS = {
  /**
   * Share of the guest's memory one command may use before the OOM killer ends it (alone). All
   * sandboxed commands together are held to 60% by the parent cgroup (cowork-init), so the kernel,
   * sshd, the agent and the page cache of the read-only root always keep the rest: without that a
   * memory hog made the guest thrash re-reading evicted executables from the squashfs.
   */
  memoryFraction: 0.5,
  /** share of the guest's CPUs, so sshd and the agent always keep some */
  cpuFraction: 0.9,
  pidsMax: 1024,
  /** the whole task sandbox: its commands and the background processes they left running */
  sandboxPidsMax: 4096,
} as const;

export function sandboxEnv(spec: SandboxSpec): Record<string, string> {
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: '/tmp/home',
    USER: spec.user,
    LOGNAME: spec.user,
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    TMPDIR: '/tmp',
    // Python's bytecode caches go to the private tmp, not into /workspace: otherwise every script
    // the agent runs leaves __pycache__/*.pyc in the change set for the person to review.
    PYTHONPYCACHEPREFIX: '/tmp/pycache',
    // and so pip's byte-compiling at install time (venv's ensurepip included) only fills that
    // private cache ahead of time: under emulation it was most of `python3 -m venv`'s minute
    PIP_NO_COMPILE: '1',
    // the workspace's package caches (cowork-init mounts /cache: its cache disk, or the session disk)
    npm_config_cache: '/cache/npm',
    PIP_CACHE_DIR: '/cache/pip',
    HTTP_PROXY: PROXY_HTTP,
    HTTPS_PROXY: PROXY_HTTP,
    http_proxy: PROXY_HTTP,
    https_proxy: PROXY_HTTP,
    ALL_PROXY: PROXY_SOCKS,
    all_proxy: PROXY_SOCKS,
    NO_PROXY: 'localhost,127.0.0.1,::1',
    no_proxy: 'localhost,127.0.0.1,::1',
    COWORK_SANDBOX: '1',
    ...(spec.extraCa
      ? {
          NODE_EXTRA_CA_CERTS: EXTRA_CA_FILE,
          SSL_CERT_FILE: CA_BUNDLE_FILE,
          REQUESTS_CA_BUNDLE: CA_BUNDLE_FILE,
          PIP_CERT: CA_BUNDLE_FILE,
          CURL_CA_BUNDLE: CA_BUNDLE_FILE,
          GIT_SSL_CAINFO: CA_BUNDLE_FILE,
        }
      : {}),
  };
}

/**
 * bwrap argv of the task's one sandbox (pure: tested without a VM), with sandbox-exec as its pid 1
 * (--as-pid-1: nothing inside can signal it), which starts each command handed to it over the
 * socket at CONTROL_FD, each in its own session and cgroup.
 */
export function taskSandboxArgv(spec: SandboxSpec): string[] {
  const argv = [
    'bwrap',
    '--as-pid-1',
    '--unshare-all',
    '--unshare-user',
    '--disable-userns',
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--hostname', 'cowork-sandbox',
    '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/bin', '/bin',
    '--symlink', 'usr/sbin', '/sbin',
    '--symlink', 'usr/lib', '/lib',
    '--symlink', 'usr/lib64', '/lib64',
    '--ro-bind', '/etc', '/etc',
    '--tmpfs', '/etc/ssh',
    '--proc', '/proc',
    '--dev', '/dev',
    '--tmpfs', '/run',
    '--bind', '/run/cowork/egress', '/run/cowork/egress',
    ...(spec.extraCa ? ['--ro-bind', EXTRA_CA_DIR, EXTRA_CA_DIR] : []),
    '--bind', '/session/tmp', '/tmp',
    '--dir', '/var',
    '--symlink', '../tmp', '/var/tmp',
    '--bind', '/workspace', '/workspace',
    '--bind', '/cache', '/cache',
    '--remount-ro', '/',
    '--chdir', '/workspace',
    '--clearenv',
  ];
  for (const [k, v] of Object.entries(sandboxEnv(spec))) argv.push('--setenv', k, v);
  argv.push('--seccomp', String(SECCOMP_FD), '--', SANDBOX_EXEC, String(CONTROL_FD));
  return argv;
}

let cgroupSeq = 0;
export function sandboxLimits(spec: SandboxSpec): CgroupLimits {
  return {
    name: `cmd-${process.pid}-${++cgroupSeq}`,
    memoryMax: Math.floor(spec.memoryMiB * SANDBOX_LIMITS.memoryFraction) * 1024 * 1024,
    pidsMax: SANDBOX_LIMITS.pidsMax,
    cpuMax: `${Math.round(spec.cpus * SANDBOX_LIMITS.cpuFraction * 100_000)} 100000`,
  };
}

export type SandboxRunOptions = Pick<ExecOptions, 'timeoutMs' | 'signal' | 'onStdout' | 'onStderr' | 'maxOutputBytes' | 'stdin'> & { readonly cwd?: string };

let sandboxSeq = 0;
const perVm = new WeakMap<GuestVm, GuestSandbox>();
/** the sha256 of the extra CA certificates installed in a VM */
const caPerVm = new WeakMap<GuestVm, string>();

/**
 * Writes the extra CA certificates into the guest as root (the data over the agent's stdin, never a
 * host path): extra.pem and bundle.pem in EXTRA_CA_DIR, 0644, each renamed into place whole. Must
 * come before the VM's sandbox is made (GuestSandbox.for binds them only if they are there then);
 * a VM that already has these certificates is left alone (a warm VM adopted by its task).
 */
export async function installExtraCa(vm: GuestVm, ca: ExtraCa): Promise<void> {
  const had = caPerVm.get(vm);
  if (had === ca.sha256) return;
  if (had !== undefined || perVm.has(vm)) throw new Error("this VM's sandbox was made with other CA certificates; the extra CA certificates can only be installed before it");
  const script = [
    'set -eu',
    'umask 022',
    `d=${EXTRA_CA_DIR}`,
    'mkdir -p "$d"',
    'cat > "$d/extra.pem.new"',
    // Debian's bundle ends with a newline; the blank line keeps the blocks apart if it ever did not
    `{ cat ${DEBIAN_CA_BUNDLE}; echo; cat "$d/extra.pem.new"; } > "$d/bundle.pem.new"`,
    'chmod 0644 "$d/extra.pem.new" "$d/bundle.pem.new"',
    'mv -f "$d/extra.pem.new" "$d/extra.pem"',
    'mv -f "$d/bundle.pem.new" "$d/bundle.pem"',
    'sha256sum "$d/extra.pem"',
  ].join('\n');
  const r = await vm.exec(['/bin/sh', '-c', script], { stdin: ca.pem, timeoutMs: 30_000 });
  const sum = r.stdout.toString().split(' ')[0];
  if (r.code !== 0 || sum !== ca.sha256) throw new Error(`could not install the extra CA certificates in the guest (exit ${r.code}${sum !== ca.sha256 ? ', the file differs from what was sent' : ''}): ${r.stderr.toString().slice(0, 300)}`);
  caPerVm.set(vm, ca.sha256);
}

/**
 * The task's sandbox: one bwrap per GuestSandbox, made by the guest agent on the first command (and
 * again after it died or was stopped), kept for the task; each command runs in it in its own
 * session and cgroup. Background processes a command leaves live until stop() or the VM's end.
 */
export class GuestSandbox {
  /** the agent's name for this task's sandbox */
  readonly key = `t${process.pid}-${++sandboxSeq}`;

  constructor(
    private readonly vm: GuestVm,
    readonly spec: SandboxSpec,
  ) {}

  /** The task's sandbox in this VM (one per VM: every caller shares it). */
  static for(vm: GuestVm): GuestSandbox {
    let sb = perVm.get(vm);
    if (!sb) perVm.set(vm, (sb = new GuestSandbox(vm, { ...vm.info.sandbox, cpus: vm.info.cpus, memoryMiB: vm.info.memoryMiB, extraCa: caPerVm.has(vm) })));
    return sb;
  }

  /** The sandbox as the guest agent starts it (sent with every command; used when it is not running). */
  get ref(): SandboxRef {
    this.refValue ??= { key: this.key, argv: taskSandboxArgv(this.spec), user: { uid: this.spec.uid, gid: this.spec.uid }, fds: { [String(SECCOMP_FD)]: SECCOMP_FILTER }, controlFd: CONTROL_FD, pidsMax: SANDBOX_LIMITS.sandboxPidsMax };
    return this.refValue;
  }
  private refValue: SandboxRef | undefined;

  /** Kills the sandbox with everything still running in it (the task's Stop); the next command starts a new one. */
  stop(): Promise<void> {
    return this.vm.stopSandbox(this.key);
  }

  /** Runs a bash command line in the sandbox. */
  run(command: string, opts: SandboxRunOptions = {}): Promise<ExecResult> {
    return this.runArgv(['/bin/bash', '-c', command], opts);
  }

  runArgv(argv: readonly string[], opts: SandboxRunOptions = {}): Promise<ExecResult> {
    const cwd = posix.normalize(opts.cwd ?? '/workspace');
    if (cwd !== '/workspace' && !cwd.startsWith('/workspace/') && cwd !== '/tmp' && !cwd.startsWith('/tmp/')) {
      return Promise.reject(new Error(`The working directory must be under /workspace or /tmp, not ${cwd}`));
    }
    // Handed to the executor of the task's sandbox (started by the agent on the first command):
    // argv, cwd and env are the command's inside it; the agent makes its own cgroup with these limits.
    return this.vm.exec(argv, { ...opts, cwd, env: {}, cgroup: sandboxLimits(this.spec), sandbox: this.ref });
  }
}
