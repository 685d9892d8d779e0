// How bytes reach the guest's sshd. Today a TCP port forwarded by QEMU's user network on
// 127.0.0.1; a vsock stream (Linux vhost-vsock, macOS Virtualization.framework) can replace it by
// implementing the same one-method interface.
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

export interface GuestTransport {
  readonly description: string;
  open(signal?: AbortSignal): Promise<Duplex>;
}

export class TcpTransport implements GuestTransport {
  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  get description(): string {
    return `tcp ${this.host}:${this.port}`;
  }

  open(signal?: AbortSignal): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: this.host, port: this.port });
      const onAbort = (): void => {
        sock.destroy();
        reject(new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      sock.once('connect', () => {
        signal?.removeEventListener('abort', onAbort);
        sock.setNoDelay(true);
        resolve(sock);
      });
      sock.once('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
    });
  }
}
