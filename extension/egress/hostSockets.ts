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

/** Open connections one VM socket serves at once (the guest relay's own cap is 128). */
export const MAX_CONNECTIONS_PER_SOCKET = 256;

/** The guest's side: slirp's forwarding address and the ports of the two entry points. */
export const EGRESS_GUEST = { address: '10.0.2.100', httpPort: 3128, socksPort: 1080 } as const;

export interface EgressSocketPaths {
  readonly http: string;
  readonly socks: string;
}

/** The folder of every VM's egress sockets for this user (short: a unix socket path has ~107 bytes). */
export function egressSocketDir(tmp = os.tmpdir(), uid = process.getuid?.() ?? 0): string {
  return path.join(tmp, `cowork-egress-${uid}`);
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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new Error(`The egress socket folder ${dir} is not a private folder of this user (it must be a directory with mode 0700): remove it and try again`);
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
  const servers: net.Server[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
    await Promise.all([paths.http, paths.socks].map((f) => rm(f, { force: true })));
  };
  try {
    for (const [file, handler] of [[paths.http, onHttp], [paths.socks, onSocks]] as const) {
      await rm(file, { force: true });
      const srv = net.createServer((s) => handler(s));
      // The guest's relay keeps at most 128 connections open, but root in a subverted guest could
      // skip it, and every connection is a socat process QEMU starts on the host: past this many
      // open at once, a new one is closed at once, so its socat exits at once (Node drops it).
      srv.maxConnections = MAX_CONNECTIONS_PER_SOCKET;
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
