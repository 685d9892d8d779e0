// Preloaded (node --import) by scripts/bench/transport.ts to measure ssh2 as the packaged
// extension runs it: esbuild leaves ssh2's native binding out of dist/vendor/ssh2.js (*.node is
// external), so there every cipher ssh2 does not hand to Node's OpenSSL runs in JavaScript.
import Module from 'node:module';

const load = Module._load;
Module._load = function (request, ...rest) {
  if (String(request).endsWith('sshcrypto.node')) throw new Error('ssh2 binding hidden for the measurement');
  return load.call(this, request, ...rest);
};
