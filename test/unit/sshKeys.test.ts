import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { utils, type ParsedKey } from 'ssh2';
import { generateEd25519 } from '../../vm-host/sshKeys';

describe('per-VM ssh keys', () => {
  it('always produces keys that parse, with a 32-byte public key (works around an ssh2 bug)', () => {
    for (let i = 0; i < 1500; i++) {
      const k = generateEd25519(`t${i}`);
      const priv: ParsedKey | Error = utils.parseKey(k.private);
      assert.ok(!(priv instanceof Error), `key ${i} does not parse`);
      assert.equal(priv.getPublicSSH().length, 51);
      assert.match(k.public, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} t\d+$/);
    }
  });
});
