// Carries the guest's egress to the host proxy: sshd in the guest listens on two unix sockets
// (OpenSSH streamlocal reverse forwarding) that the sandbox sees in /run/cowork/egress, and each
// connection to them arrives here as an SSH channel handed to the proxy. No host port is opened.
import type { SshConnection } from '../guest/sshConnection';
import type { EgressProxy } from './proxy';

export const EGRESS_SOCKETS = { http: '/run/cowork/egress/http.sock', socks: '/run/cowork/egress/socks.sock' } as const;

export async function bridgeEgress(conn: SshConnection, proxy: EgressProxy): Promise<void> {
  const client = conn.raw;
  client.on('unix connection', (info, accept, reject) => {
    if (info.socketPath === EGRESS_SOCKETS.http) proxy.handleHttp(accept());
    else if (info.socketPath === EGRESS_SOCKETS.socks) proxy.handleSocks(accept());
    else reject();
  });
  for (const socket of Object.values(EGRESS_SOCKETS)) {
    await new Promise<void>((resolve, reject) =>
      client.openssh_forwardInStreamLocal(socket, (err) => (err ? reject(new Error(`Cannot set up the egress socket ${socket} in the guest: ${err.message}`)) : resolve())),
    );
  }
}
