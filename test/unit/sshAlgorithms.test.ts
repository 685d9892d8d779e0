// The SSH algorithms are pinned on both ends to ones Node runs in OpenSSL (AES-GCM, X25519,
// Ed25519): the host side refuses a server that only offers others, and the guest's sshd config
// offers exactly the host's lists.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Server, utils } from 'ssh2';
import { GuestError } from '../../extension/guest/errors';
import { SSH_ALGORITHMS, SshConnection } from '../../extension/guest/sshConnection';
import type { GuestTransport } from '../../extension/guest/transport';

const ROOT = path.resolve(__dirname, '..', '..');

async function serverOffering(cipher: string[]): Promise<{ transport: GuestTransport; hostKey: string; close(): void }> {
  const keys = utils.generateKeyPairSync('ed25519');
  const server = new Server({ hostKeys: [keys.private], algorithms: { cipher: cipher as never } }, (c) => {
    c.on('error', () => undefined);
    c.on('authentication', (ctx) => ctx.accept());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    transport: { description: `test ${port}`, open: () => Promise.resolve(net.connect(port, '127.0.0.1')) },
    hostKey: keys.public,
    close: () => server.close(),
  };
}

const user = utils.generateKeyPairSync('ed25519').private;

describe('SSH algorithms', { timeout: 30_000 }, () => {
  it('negotiates AES-GCM with X25519 and Ed25519 when the server offers everything', { timeout: 15_000 }, async () => {
    const s = await serverOffering(['chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']);
    try {
      const conn = await SshConnection.connect(s.transport, { username: 'root', privateKey: user, hostKey: s.hostKey });
      assert.equal(conn.negotiated?.cs.cipher, 'aes128-gcm@openssh.com');
      assert.equal(conn.negotiated?.sc.cipher, 'aes128-gcm@openssh.com');
      assert.match(conn.negotiated?.kex ?? '', /^curve25519-sha256/);
      assert.equal(conn.negotiated?.serverHostKey, 'ssh-ed25519');
      conn.close();
    } finally {
      s.close();
    }
  });

  it('refuses a server that offers only ciphers outside the list (chacha20 would run in JavaScript without ssh2\'s binding)', { timeout: 15_000 }, async () => {
    const s = await serverOffering(['chacha20-poly1305@openssh.com', 'aes128-ctr']);
    try {
      await assert.rejects(SshConnection.connect(s.transport, { username: 'root', privateKey: user, hostKey: s.hostKey }, { readyTimeoutMs: 5_000 }), (err: unknown) => err instanceof GuestError && err.code === 'connect-failed');
    } finally {
      s.close();
    }
  });

  it("the guest's sshd offers exactly the host's lists", () => {
    const conf = readFileSync(path.join(ROOT, 'vm-host', 'guest', 'root', 'etc', 'ssh', 'sshd_config.d', 'cowork.conf'), 'utf8');
    const option = (name: string): string[] => (new RegExp(`^${name} (.+)$`, 'm').exec(conf)?.[1] ?? '').split(',');
    assert.deepEqual(option('Ciphers'), [...SSH_ALGORITHMS.cipher]);
    assert.deepEqual(option('KexAlgorithms'), [...SSH_ALGORITHMS.kex]);
    assert.deepEqual(option('HostKeyAlgorithms'), [...SSH_ALGORITHMS.serverHostKey]);
    assert.deepEqual(option('MACs'), [...SSH_ALGORITHMS.hmac]);
  });
});
