// The server side of a SOCKS5 CONNECT (RFC 1928), no authentication. Only what the egress proxy
// needs: read the greeting and the request from a stream, answer with a reply code.
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';

export const SOCKS_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  hostUnreachable: 0x04,
  commandNotSupported: 0x07,
  addressNotSupported: 0x08,
} as const;

export interface SocksRequest {
  readonly command: 'connect' | 'bind' | 'udp';
  readonly host: string;
  readonly port: number;
  /** bytes the client sent after the request (the start of the tunnel) */
  readonly rest: Buffer;
}

export const SOCKS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Reads exactly what the handshake needs from the stream, answering the greeting with "no auth". */
export function socksHandshake(stream: Duplex, timeoutMs = SOCKS_HANDSHAKE_TIMEOUT_MS): Promise<SocksRequest> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let greeted = false;
    const timer = setTimeout(() => fail(new Error('SOCKS handshake timed out')), timeoutMs);
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      stream.pause(); // whatever follows the request waits for the tunnel
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
    };
    const onEnd = (): void => fail(new Error('client closed during the SOCKS handshake'));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > 1024) return fail(new Error('SOCKS handshake too long'));
      if (!greeted) {
        if (buf.length < 2) return;
        if (buf[0] !== 0x05) return fail(new Error('not SOCKS5'));
        const n = buf[1]!;
        if (buf.length < 2 + n) return;
        const methods = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        if (!methods.includes(0x00)) {
          stream.end(Buffer.from([0x05, 0xff]));
          return fail(new Error('client offers no acceptable authentication method'));
        }
        stream.write(Buffer.from([0x05, 0x00]));
        greeted = true;
      }
      if (buf.length < 5) return;
      if (buf[0] !== 0x05) return fail(new Error('bad SOCKS request'));
      const cmd = buf[1]!;
      const atyp = buf[3]!;
      let host: string;
      let at: number;
      if (atyp === 0x01) {
        if (buf.length < 10) return;
        host = [...buf.subarray(4, 8)].join('.');
        at = 8;
      } else if (atyp === 0x03) {
        const len = buf[4]!;
        if (buf.length < 5 + len + 2) return;
        host = buf.subarray(5, 5 + len).toString('latin1');
        at = 5 + len;
      } else if (atyp === 0x04) {
        if (buf.length < 22) return;
        const parts: string[] = [];
        for (let i = 0; i < 16; i += 2) parts.push(buf.readUInt16BE(4 + i).toString(16));
        host = parts.join(':');
        at = 20;
      } else {
        stream.end(socksReply(SOCKS_REPLY.addressNotSupported));
        return fail(new Error('unsupported SOCKS address type'));
      }
      const port = buf.readUInt16BE(at);
      const rest = buf.subarray(at + 2);
      cleanup();
      if (atyp === 0x03 && isIP(host)) host = host.trim();
      resolve({ command: cmd === 0x01 ? 'connect' : cmd === 0x02 ? 'bind' : 'udp', host, port, rest });
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

export function socksReply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}
