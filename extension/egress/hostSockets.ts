// Where a VM's egress reaches the host: two unix sockets per VM (HTTP proxy, SOCKS5), listened on by
// that task's EgressProxy and connected to by QEMU. QEMU's user network (slirp, restrict=on) lets
// the guest open exactly two TCP connections out, to EGRESS_GUEST.address on the two ports, and
// runs `socat` for each one with the connection as its stdin/stdout; socat connects to the
// socket of *this* VM (its path is fixed in QEMU's command line at boot), so a connection is
// attributed to its task by where it arrives, which the guest cannot choose. No cipher and no SSH
// in the data path: under TCG the guest's AES-GCM (28 MiB/s) was the limit (docs/benchmarks.md).
//
// The path is derived from the vm id alone, so the helper (which starts QEMU) and the extension
// (which listens) agree without a message, and a warm VM booted for a task before the task's
// proxy exists reaches that proxy once it listens. The folder is the user's own (0700).
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';

/**
 * Open connections one VM's two sockets serve at once, together (the guest relay's own cap, also
 * shared by both, is 128). Each is a socat process on the host (~0.8 MB), so this bounds what root
 * in a subverted guest, which can skip the relay, makes the host hold per VM.
 */
export const MAX_CONNECTIONS_PER_VM = 160;

/**
 * Characters a socket path may have: it is written into socat's address (`UNIX-CONNECT:<path>`),
 * where `,` `:` quotes, `\` and brackets are syntax, so a temp dir with them would silently break
 * every connection (socat's errors go to /dev/null: its stderr is the guest's connection).
 */
const SOCAT_SAFE_PATH = /^[A-Za-z0-9._/+-]+$/;

export function socatSafePath(p: string): boolean {
  return SOCAT_SAFE_PATH.test(p);
}

/** The guest's side: slirp's forwarding address and the ports of the two entry points. */
export const EGRESS_GUEST = { address: '10.0.2.100', httpPort: 3128, socksPort: 1080 } as const;

export interface EgressSocketPaths {
  readonly http: string;
  readonly socks: string;
}

/**
 * Where the folder goes: $XDG_RUNTIME_DIR (the user's own 0700 folder, so no other local user can
 * take the name first, as one can in a shared /tmp), else the temp dir; a candidate with characters
 * socat would misread is passed over (the last resort is /tmp). The helper inherits the extension's
 * environment, so both sides pick the same folder.
 */
export function egressSocketBase(env: NodeJS.ProcessEnv = process.env, tmp = os.tmpdir()): string {
  for (const c of [env.XDG_RUNTIME_DIR, tmp]) if (c && path.isAbsolute(c) && socatSafePath(c)) return c;
  return '/tmp';
}

/** The folder of every VM's egress sockets for this user (short: a unix socket path has ~107 bytes). */
export function egressSocketDir(base = egressSocketBase(), uid = process.getuid?.() ?? 0): string {
  return path.join(base, `cowork-egress-${uid}`);
}

export function egressSocketPaths(vmId: string, dir = egressSocketDir()): EgressSocketPaths {
  // hashed: a vm id may be 64 characters, and the path must stay short whatever the temp dir
  const h = createHash('sha256').update(vmId).digest('hex').slice(0, 16);
  return { http: path.join(dir, `${h}.http`), socks: path.join(dir, `${h}.socks`) };
}

/**
 * Makes the folder (0700) or checks that the one there is a real folder of this user that nobody
 * else can enter: another local user must not be able to plant or reach a VM's socket.
 */
export function ensureEgressSocketDir(dir = egressSocketDir()): string {
  if (process.platform === 'win32') {
    // QEMU's guestfwd `cmd:` and unix sockets carry the egress; neither is there on Windows
    throw new Error('Cowork does not run task VMs on Windows yet: the egress path needs unix sockets and QEMU\'s guestfwd command forwarding (docs/architecture.md). Use WSL 2 or a Linux/macOS machine.');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new Error(`The egress socket folder ${dir} is not a private folder of this user (it must be a directory with mode 0700). Remove it, or, if another user made it, set XDG_RUNTIME_DIR to a folder of your own for VS Code`);
  }
  return dir;
}

/**
 * Listens on a VM's two sockets (replacing what an earlier run left there), each connection handed
 * to its handler; only this user may connect (0600, in the 0700 folder). Returns the closer, which
 * also removes the files.
 */
export async function listenEgressSockets(paths: EgressSocketPaths, onHttp: (s: Duplex) => void, onSocks: (s: Duplex) => void): Promise<() => Promise<void>> {
  ensureEgressSocketDir(path.dirname(paths.http));
  // A live socket there belongs to another window serving a VM of the same id (the smoke-test VM's
  // id comes from the folder: the same folder open in two windows). Taking it over would send that
  // VM's egress through this window's policy and log, and closing would cut it off: refuse.
  for (const file of [paths.http, paths.socks]) {
    if (await answers(file)) throw new Error(`Another Cowork window already serves this VM's egress (${file}): is this folder open in two windows? Close the other window's VM (Stop Smoke-Test and Warm VMs) and try again`);
  }
  const servers: net.Server[] = [];
  // The guest's relay keeps at most 128 connections open, but root in a subverted guest could skip
  // it, and every connection is a socat process QEMU starts on the host: past MAX_CONNECTIONS_PER_VM
  // open at once on the two sockets together, a new one is closed at once, so its socat exits.
  let open = 0;
  const close = async (): Promise<void> => {
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
    await Promise.all([paths.http, paths.socks].map((f) => rm(f, { force: true })));
  };
  try {
    for (const [file, handler] of [[paths.http, onHttp], [paths.socks, onSocks]] as const) {
      await rm(file, { force: true });
      const srv = net.createServer((s) => {
        if (open >= MAX_CONNECTIONS_PER_VM) {
          s.destroy();
          return;
        }
        open++;
        s.once('close', () => open--);
        handler(s);
      });
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(file, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      await chmod(file, 0o600);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return close;
}

/** True when something listens on the unix socket `file` (a stale file or none: false). */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(file);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
