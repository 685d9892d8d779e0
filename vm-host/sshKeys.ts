// Per-VM ed25519 keys in OpenSSH format (what sshd needs for its host key and ssh2 for the client).
// ssh2 1.17's generateKeyPairSync drops a leading zero byte of the public key (~0.4% of keys,
// measured: 13 of 3,000), producing a key neither side can parse, so every pair is checked and a
// bad one regenerated.
import { utils as sshUtils, type ParsedKey } from 'ssh2';

const ED25519_PUBLIC_BLOB_BYTES = 4 + 'ssh-ed25519'.length + 4 + 32;

export interface KeyPair {
  /** OpenSSH private key */
  readonly private: string;
  /** "ssh-ed25519 AAAA… comment" */
  readonly public: string;
}

export function generateEd25519(comment: string, attempts = 20): KeyPair {
  for (let i = 0; i < attempts; i++) {
    const pair = sshUtils.generateKeyPairSync('ed25519', { comment });
    const priv: ParsedKey | Error = sshUtils.parseKey(pair.private);
    const pub: ParsedKey | Error = sshUtils.parseKey(pair.public);
    if (priv instanceof Error || pub instanceof Error) continue;
    const blob = pub.getPublicSSH();
    if (blob.length === ED25519_PUBLIC_BLOB_BYTES && blob.equals(priv.getPublicSSH())) return pair;
  }
  throw new Error(`could not generate a valid ed25519 key in ${attempts} attempts`);
}
