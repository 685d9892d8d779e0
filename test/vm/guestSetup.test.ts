// Issue 12, per-workspace guest setup and package caches, with real guests, the real proxy and the
// real npm registry:
//  - a workspace's .cowork/guest.json (one small Debian package and a setup script) is asked about
//    before anything is built, builds a derived layer once, and the package and the script's work
//    are there in the VM; a second task's VM builds nothing and has them too;
//  - a second task of the same workspace (its own VM and its own sandbox user) finds npm's cache
//    on the workspace's cache disk: fewer bytes come through the proxy (figures printed).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { guestLayerResolver, type ConsentQuestion } from '../../extension/config/guestConsent';
import { SettingsSchema, type Settings } from '../../extension/config/settings';
import { classifyAddress } from '../../extension/egress/addresses';
import type { EgressRecord } from '../../extension/egress/audit';
import type { GuestVm } from '../../extension/guest/guestVm';
import { cacheDiskPath } from '../../extension/session/cacheDisk';
import { VmHelper } from '../../extension/session/vmHelper';
import { WorkspaceVm } from '../../extension/session/workspaceVm';
import { defaultCacheDir } from '../../vm-host/image/cacheDir';
import { HELPER, tempDir, testAccelerator } from './harness';
import { MemoryStore } from '../support/memoryStore';
import { until } from '../support/wait';

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const NPM_PACKAGE = 'lodash@4.17.21';
const REGISTRY = 'registry.npmjs.org';
// Networks that inspect TLS with their own CA (this workplace's among them) need the host's CA
// bundle in the guest; test/vm/toolbox.test.ts does the same.
const HOST_CA_BUNDLE = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let helper: VmHelper;
let settings: Settings;
const nonce = randomBytes(8).toString('hex');
const questions: { at: number; q: ConsentQuestion }[] = [];
const layerProgress: { at: number; message: string }[] = [];
const layerKeys = new Set<string>();
const vms: WorkspaceVm[] = [];

const store = new MemoryStore();

function taskVm(id: string): WorkspaceVm {
  const vm = new WorkspaceVm({
    helper,
    workspace: ws,
    storageDir: path.join(root.dir, 'storage'),
    log: quiet,
    vmId: id,
    guestLayer: guestLayerResolver({
      workspace: ws,
      store,
      prompt: (q) => {
        questions.push({ at: Date.now(), q });
        return Promise.resolve(true);
      },
      extraPackages: () => [],
      notify: (m) => assert.fail(`unexpected notice: ${m}`),
    }),
    cacheDisk: cacheDiskPath(path.join(root.dir, 'global'), ws),
  });
  vms.push(vm);
  return vm;
}

async function root$(guest: GuestVm, command: string): Promise<string> {
  const r = await guest.exec(['/bin/sh', '-c', command], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${command}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** npm install in the sandbox; the bytes the proxy carried down from the registry meanwhile. */
async function npmInstall(vm: WorkspaceVm, dir: string): Promise<{ bytesDown: number; ms: number }> {
  const records: EgressRecord[] = [];
  const sub = vm.onEgress((r) => records.push(r));
  try {
    const t0 = Date.now();
    const r = await vm.sandbox!.run(`mkdir -p ${dir} && cd ${dir} && NODE_EXTRA_CA_CERTS=/workspace/.host-ca.pem npm install --no-audit --no-fund --no-package-lock --loglevel=error ${NPM_PACKAGE} && test -f node_modules/lodash/package.json`, { timeoutMs: 300_000 });
    const ms = Date.now() - t0;
    assert.equal(r.code, 0, `npm install failed: ${r.stdout.toString()}\n${r.stderr.toString()}`);
    // each tunnel is recorded when it closes (npm closes its sockets when it exits)
    await until('the proxy to record the registry tunnels', () => records.some((x) => x.host === 'registry.npmjs.org' && x.allowed), 20_000);
    await new Promise((r2) => setTimeout(r2, 500)); // later tunnels of the same run (bounded, not a wait for an event)
    return { bytesDown: records.filter((x) => x.host.endsWith('npmjs.org')).reduce((n, x) => n + x.bytesDown, 0), ms };
  } finally {
    sub.dispose();
  }
}

before(
  async () => {
    root = await tempDir('guest-setup');
    ws = path.join(root.dir, 'ws');
    await mkdir(path.join(ws, '.cowork'), { recursive: true });
    await writeFile(
      path.join(ws, '.cowork', 'guest.json'),
      JSON.stringify({ packages: ['cowsay'], setup: `echo ${nonce} > /etc/cowork-test-layer\n` }, null, 2),
    );
    helper = new VmHelper({ helperPath: HELPER, log: quiet });
    helper.onEvent((ev) => {
      if (ev.event === 'image.progress' && /layer|workspace/i.test(ev.message)) layerProgress.push({ at: Date.now(), message: ev.message });
    });
    await copyFile(HOST_CA_BUNDLE, path.join(ws, '.host-ca.pem'));
    // Some networks resolve the registry to an address in a special range (e.g. 203.0.113.0/24),
    // which the proxy refuses unless that exact address is listed too (as in toolbox.test.ts).
    const registryIps = (await lookup(REGISTRY, { all: true })).map((a) => a.address).filter((ip) => classifyAddress(ip).range);
    const allowed = [...SettingsSchema.parse({})['network.allowedDomains'], ...registryIps];
    settings = SettingsSchema.parse({ 'vm.accelerator': testAccelerator(), 'vm.cpus': 2, 'vm.memoryMiB': 1024, 'vm.diskGiB': 4, 'vm.idleStopMinutes': 0, 'network.allowedDomains': allowed });
  },
  { timeout: 30_000 },
);

after(
  async () => {
    for (const vm of vms) await vm.dispose().catch(() => undefined);
    await helper?.dispose();
    // this run's layer (its script holds a nonce, so no other run uses it)
    const images = path.join(defaultCacheDir(), 'images');
    for (const name of await readdir(images).catch(() => [] as string[])) {
      if ([...layerKeys].some((k) => name.includes('-layer-') && name.endsWith(`-${k}`))) await rm(path.join(images, name), { recursive: true, force: true });
    }
    await root?.dispose();
  },
  { timeout: 60_000 },
);

describe('per-workspace guest setup and package caches', { timeout: 1_800_000 }, () => {
  let bytesFirst = 0;
  let firstUid = -1;

  it('asks first, builds the derived layer once, and the package and the script\'s work are in the VM', { timeout: 1_200_000 }, async () => {
    const vm = taskVm('gs-first');
    const t0 = Date.now();
    const guest = await vm.start(settings);
    const startMs = Date.now() - t0;
    assert.equal(questions.length, 1, 'the person was asked once');
    assert.deepEqual(questions[0]!.q.spec.packages, ['cowsay']);
    assert.ok(questions[0]!.q.detail.includes(`echo ${nonce}`), 'the dialog shows the script');
    assert.ok(layerProgress.length > 0, 'the layer build reported progress');
    assert.ok(layerProgress.every((p) => p.at >= questions[0]!.at), 'nothing was built before the answer');
    const layer = guest.info.guestLayer;
    assert.ok(layer, 'the VM booted a derived layer');
    layerKeys.add(layer.key);
    assert.equal(layer.built, true, 'this start built it');
    assert.equal(guest.info.cacheDiskAttached, true);
    firstUid = guest.info.sandbox.uid;
    assert.match(await root$(guest, "dpkg-query -W -f '${Status}' cowsay"), /install ok installed/);
    assert.equal((await root$(guest, 'cat /etc/cowork-test-layer')).trim(), nonce);
    const moo = await vm.sandbox!.run('/usr/games/cowsay moo', { timeoutMs: 60_000 });
    assert.equal(moo.code, 0, moo.stderr.toString());
    assert.match(moo.stdout.toString(), /< moo >/);
    // the root stays read-only for the sandbox with the layer too
    const write = await vm.sandbox!.run('touch /usr/games/x', { timeoutMs: 30_000 });
    assert.notEqual(write.code, 0, 'the sandbox cannot write /usr');
    const first = await npmInstall(vm, '/tmp/p1');
    bytesFirst = first.bytesDown;
    console.log(`# guest layer: first start ${(startMs / 1000).toFixed(1)} s (layer built); npm install ${NPM_PACKAGE} with an empty cache: ${first.bytesDown} bytes through the proxy, ${(first.ms / 1000).toFixed(1)} s`);
    assert.ok(first.bytesDown > 50_000, `the first install downloads the package (${first.bytesDown} bytes)`);
    await vm.stop();
  });

  it('a second task of the workspace builds nothing, is not asked again, and reuses the npm cache', { timeout: 600_000 }, async () => {
    const vm = taskVm('gs-second');
    const t0 = Date.now();
    const guest = await vm.start(settings);
    const startMs = Date.now() - t0;
    assert.equal(questions.length, 1, 'the same content is not asked about again');
    assert.equal(guest.info.guestLayer?.built, false, 'the cached layer was used');
    assert.ok(layerKeys.has(guest.info.guestLayer?.key ?? ''), 'the same layer');
    assert.notEqual(guest.info.sandbox.uid, firstUid, 'another task, another sandbox user');
    assert.match(await root$(guest, "dpkg-query -W -f '${Status}' cowsay"), /install ok installed/);
    const owner = (await root$(guest, 'stat -c %u /cache/npm')).trim();
    assert.equal(owner, String(guest.info.sandbox.uid), "the cache belongs to this task's sandbox user");
    const cached = Number((await root$(guest, 'du -sb /cache/npm | cut -f1')).trim());
    assert.ok(cached > 50_000, `the cache holds the first task's download (${cached} bytes)`);
    const second = await npmInstall(vm, '/tmp/p2');
    console.log(`# guest layer: second start ${(startMs / 1000).toFixed(1)} s (no build); npm install ${NPM_PACKAGE} with the workspace's cache: ${second.bytesDown} bytes through the proxy (first: ${bytesFirst}), ${(second.ms / 1000).toFixed(1)} s; cache ${cached} bytes`);
    assert.ok(second.bytesDown < bytesFirst / 2, `the second install downloads less (${second.bytesDown} vs ${bytesFirst} bytes)`);
    await vm.stop();
  });
});
