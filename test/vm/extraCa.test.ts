// cowork.network.extraCaCertificates with a real guest, the real proxy and the real npm registry,
// through the session layer the extension uses (WorkspaceVm): the host's CA bundle (the file the
// other VM tests already use: NODE_EXTRA_CA_CERTS, else Debian's bundle) is named in the setting,
// and with no CA variable set by hand curl, Python and npm (Node) in the sandbox reach
// https://registry.npmjs.org; the files in the guest are root's, 0644 and read-only in the sandbox.
//
// The negative half (the same requests fail with a certificate error without the extra
// certificates) only holds where the network inspects TLS. Whether it does is found on the host:
// a TLS connection to the registry checked against Node's built-in roots alone (Mozilla's, as
// Debian's bundle) fails with a certificate error. Where it does not, the test asserts the requests
// succeed without the extra certificates too, and says so.
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { loadExtraCa } from '../../extension/config/extraCa';
import { SettingsSchema, type Settings } from '../../extension/config/settings';
import { classifyAddress } from '../../extension/egress/addresses';
import type { ExecResult } from '../../extension/guest/guestAgent';
import type { GuestVm } from '../../extension/guest/guestVm';
import { VmHelper } from '../../extension/session/vmHelper';
import { WorkspaceVm } from '../../extension/session/workspaceVm';
import { HELPER, tempDir, testAccelerator } from './harness';

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const REGISTRY = 'registry.npmjs.org';
const URL_ = `https://${REGISTRY}/lodash`;
const HOST_CA_BUNDLE = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
// the sandbox has no DNS and no route: each client goes through the proxy named in its environment
const CURL = `curl -sS -o /dev/null -w '%{http_code}\\n' ${URL_}`;
const PYTHON = `python3 -c "import urllib.request; print(urllib.request.urlopen('${URL_}').status)"`;
/**
 * no retries: a certificate error fails at once (npm's default retries wait up to a minute); an
 * empty cache each time: npm answers from its cache when the network fails, even with --prefer-online
 */
const NPM = 'npm view lodash version --fetch-retries=0 --cache "$(mktemp -d)"';
const CERT_ERROR = /certificate|SSL|CERT_|self.signed|unable to get local issuer/i;

let root: Awaited<ReturnType<typeof tempDir>>;
let helper: VmHelper;
let settings: Settings;
let vm: WorkspaceVm;
let guest: GuestVm;
/** the network re-signs the registry's certificate with a CA Mozilla's roots do not hold */
let intercepts = false;

const out = (r: ExecResult): string => r.stdout.toString() + r.stderr.toString();
const run = (cmd: string, timeoutMs = 180_000): Promise<ExecResult> => vm.sandbox!.run(cmd, { timeoutMs });

/** A TLS handshake with the registry against Node's built-in roots only: the error code, or undefined when it verifies. */
function handshakeWithBuiltinRoots(): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: REGISTRY, port: 443, servername: REGISTRY, ca: [...tls.rootCertificates] });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no TLS handshake with ${REGISTRY} within 20 s`));
    }, 20_000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.end();
      resolve(undefined);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (CERT_ERROR.test(`${err.code ?? ''} ${err.message}`)) resolve(err.code ?? err.message);
      else reject(err);
    });
  });
}

before(
  async () => {
    root = await tempDir('extra-ca');
    const ws = path.join(root.dir, 'ws');
    await mkdir(ws);
    await writeFile(path.join(ws, 'README'), 'extra CA test\n');
    const code = await handshakeWithBuiltinRoots();
    intercepts = code !== undefined;
    console.log(`extraCa: ${intercepts ? `this network inspects TLS (${code} against Node's built-in roots): the negative checks apply` : 'this network does not inspect TLS: the negative checks only show the requests work without the extra certificates too'}`);
    // Some networks resolve the registry to an address in a special range (as in toolbox.test.ts)
    const registryIps = (await lookup(REGISTRY, { all: true })).map((a) => a.address).filter((ip) => classifyAddress(ip).range);
    const allowed = [...SettingsSchema.parse({})['network.allowedDomains'], ...registryIps];
    settings = SettingsSchema.parse({
      'vm.accelerator': testAccelerator(),
      'vm.cpus': 2,
      'vm.memoryMiB': 1024,
      'vm.diskGiB': 4,
      'vm.idleStopMinutes': 0,
      'network.allowedDomains': allowed,
      'network.extraCaCertificates': [HOST_CA_BUNDLE],
    });
    helper = new VmHelper({ helperPath: HELPER, log: quiet });
    vm = new WorkspaceVm({ helper, workspace: ws, storageDir: path.join(root.dir, 'storage'), log: quiet, vmId: 'extra-ca' });
    guest = await vm.start(settings);
  },
  { timeout: 300_000 },
);

after(
  async () => {
    await vm?.dispose().catch(() => undefined);
    await helper?.dispose();
    await root?.dispose();
  },
  { timeout: 60_000 },
);

describe('cowork.network.extraCaCertificates in the guest', { timeout: 1_200_000 }, () => {
  it('installs the certificates as root, 0644, read-only in the sandbox, and points the clients at them', { timeout: 120_000 }, async () => {
    const ca = loadExtraCa([HOST_CA_BUNDLE])!;
    const rootSide = await guest.exec(['/bin/sh', '-c', 'stat -c "%a %U %n" /run/cowork/ca/extra.pem /run/cowork/ca/bundle.pem && sha256sum /run/cowork/ca/extra.pem && grep -c "BEGIN CERTIFICATE" /run/cowork/ca/bundle.pem /etc/ssl/certs/ca-certificates.crt'], { timeoutMs: 30_000 });
    assert.equal(rootSide.code, 0, out(rootSide));
    const lines = rootSide.stdout.toString().trim().split('\n');
    assert.deepEqual(lines.slice(0, 2), ['644 root /run/cowork/ca/extra.pem', '644 root /run/cowork/ca/bundle.pem']);
    assert.equal(lines[2]!.split(' ')[0], ca.sha256, 'extra.pem holds exactly what the host read');
    const [bundle, debian] = lines.slice(3).map((l) => Number(l.split(':')[1]));
    assert.equal(bundle, debian! + ca.count, "bundle.pem is Debian's bundle plus the extra certificates");

    const r = await run('env | grep -E "^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|REQUESTS_CA_BUNDLE|PIP_CERT|CURL_CA_BUNDLE|GIT_SSL_CAINFO)=" | sort; head -c 27 /run/cowork/ca/extra.pem; echo; echo x > /run/cowork/ca/extra.pem && echo WROTE; true');
    assert.equal(r.code, 0, out(r));
    assert.deepEqual(r.stdout.toString().trim().split('\n').slice(0, 7), [
      'CURL_CA_BUNDLE=/run/cowork/ca/bundle.pem',
      'GIT_SSL_CAINFO=/run/cowork/ca/bundle.pem',
      'NODE_EXTRA_CA_CERTS=/run/cowork/ca/extra.pem',
      'PIP_CERT=/run/cowork/ca/bundle.pem',
      'REQUESTS_CA_BUNDLE=/run/cowork/ca/bundle.pem',
      'SSL_CERT_FILE=/run/cowork/ca/bundle.pem',
      '-----BEGIN CERTIFICATE-----',
    ]);
    assert.doesNotMatch(out(r), /WROTE/, 'the sandbox cannot change the certificates');
    assert.match(r.stderr.toString(), /Read-only file system|Permission denied/);
  });

  it('curl and Python reach the registry through the proxy with the setting alone', { timeout: 300_000 }, async () => {
    const curl = await run(CURL);
    assert.equal(curl.code, 0, out(curl));
    assert.equal(curl.stdout.toString().trim(), '200', out(curl));
    const py = await run(PYTHON);
    assert.equal(py.code, 0, out(py));
    assert.equal(py.stdout.toString().trim(), '200', out(py));
  });

  it('`npm view lodash version` (Node) works with no NODE_EXTRA_CA_CERTS set by hand', { timeout: 300_000 }, async () => {
    const r = await run(NPM, 240_000);
    assert.equal(r.code, 0, out(r));
    assert.match(r.stdout.toString().trim(), /^\d+\.\d+\.\d+$/, out(r));
  });

  it('without the extra certificates the same requests fail with a certificate error (where the network inspects TLS)', { timeout: 300_000 }, async () => {
    // the variables unset for one command: the clients fall back to Debian's bundle
    const unset = 'env -u NODE_EXTRA_CA_CERTS -u SSL_CERT_FILE -u REQUESTS_CA_BUNDLE -u PIP_CERT -u CURL_CA_BUNDLE -u GIT_SSL_CAINFO';
    for (const [name, cmd] of [['curl', CURL], ['python', PYTHON], ['npm', NPM]] as const) {
      const r = await run(`${unset} ${cmd}`, 240_000);
      if (intercepts) {
        assert.notEqual(r.code, 0, `${name} succeeded without the extra certificates: ${out(r)}`);
        assert.match(out(r), CERT_ERROR, `${name}: ${out(r)}`);
      } else assert.equal(r.code, 0, `${name}: ${out(r)}`);
    }
  });
});
