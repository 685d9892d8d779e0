// The guest's toolbox (vm-host/image/recipe.json) doing real work in the sandbox, through the real
// egress proxy: a TypeScript project's `npm ci && npm test` from the npm registry; a venv and a pip
// install from a wheel index this test builds and serves on the host loopback (PyPI cannot be
// reached from these machines; the policy allows exactly that address:port); `make` of a C file;
// the same npm install refused by the proxy, naming the host, once the registry is off the list;
// a CSV summarised into an .xlsx with pandas/openpyxl; git's identity and safe.directory.
// One booted guest for the whole file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifyAddress } from '../../extension/egress/addresses';
import { MemoryAudit } from '../../extension/egress/audit';
import { egressSocketPaths, listenEgressSockets } from '../../extension/egress/hostSockets';
import { EgressPolicy } from '../../extension/egress/policy';
import { EgressProxy } from '../../extension/egress/proxy';
import type { ExecResult } from '../../extension/guest/guestAgent';
import type { GuestVm } from '../../extension/guest/guestVm';
import { GuestSandbox } from '../../extension/guest/sandbox';
import type { VmHostClient } from '../../extension/guest/vmHostClient';
import { bootGuest, startHelper, tempDir } from './harness';

const REGISTRY = 'registry.npmjs.org';
const FIXTURE = path.join(__dirname, 'fixtures', 'toolbox-ts');
const WHEEL = 'cwtoy-1.0.0-py3-none-any.whl';
const HOST_CA_BUNDLE = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
const NPM_CA = 'NODE_EXTRA_CA_CERTS=/workspace/.host-ca.pem';

let client: VmHostClient;
let vm: GuestVm;
let sb: GuestSandbox;
let root: Awaited<ReturnType<typeof tempDir>>;
let ws: string;
let index: http.Server;
let indexPort: number;
const indexRequests: string[] = [];
const audit = new MemoryAudit();
let withRegistry: EgressProxy;
let withoutRegistry: EgressProxy;
/** the proxy the guest's egress sockets reach now */
let current: EgressProxy;
let closeSockets: (() => Promise<void>) | undefined;

const out = (r: ExecResult): string => r.stdout.toString() + r.stderr.toString();
/** the egress audit's last records for the registry, for a failure message: who ended a connection and why */
const registryTail = (): string =>
  audit.records
    .filter((x) => x.host === REGISTRY)
    .slice(-8)
    .map((x) => `${x.time} ${x.via} ${x.allowed ? 'allowed' : 'refused'} ${x.rule}${x.reason ? ` (${x.reason})` : ''} up ${x.bytesUp} down ${x.bytesDown}${x.durationMs !== undefined ? ` ${x.durationMs} ms` : ''}`)
    .join('\n');
const run = (cmd: string, timeoutMs = 120_000): Promise<ExecResult> => sb.run(cmd, { timeoutMs });

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const r = await f();
  console.log(`toolbox: ${label}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return r;
}

/** A pure-Python wheel, built here (PyPI cannot be reached), and the PEP 503 page that lists it. */
function buildWheel(dir: string): void {
  execFileSync(
    'python3',
    [
      '-c',
      `import base64, hashlib, sys, zipfile
files = {
  'cwtoy/__init__.py': 'def greet():\\n    return "hello from a wheel"\\n',
  'cwtoy-1.0.0.dist-info/METADATA': 'Metadata-Version: 2.1\\nName: cwtoy\\nVersion: 1.0.0\\nSummary: a toy for the toolbox test\\n',
  'cwtoy-1.0.0.dist-info/WHEEL': 'Wheel-Version: 1.0\\nGenerator: cowork-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n',
}
record = []
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append(f'{name},sha256={digest},{len(data)}')
    record.append('cwtoy-1.0.0.dist-info/RECORD,,')
    z.writestr('cwtoy-1.0.0.dist-info/RECORD', '\\n'.join(record) + '\\n')
`,
      path.join(dir, WHEEL),
    ],
    { stdio: 'inherit' },
  );
}

before(
  async () => {
    root = await tempDir('toolbox');
    ws = path.join(root.dir, 'ws');
    await mkdir(path.join(root.dir, 'sessions'));
    await mkdir(path.join(root.dir, 'wheels'));
    buildWheel(path.join(root.dir, 'wheels'));

    // The TypeScript project: package.json and its lock file from the fixture, sources written here
    // (so the repository's own type-check and lint never see them).
    await cp(FIXTURE, path.join(ws, 'proj'), { recursive: true });
    await mkdir(path.join(ws, 'proj', 'src'));
    await mkdir(path.join(ws, 'proj', 'test'));
    await writeFile(
      path.join(ws, 'proj', 'src', 'duration.ts'),
      "declare function require(name: string): unknown;\nconst ms = require('ms') as (value: string) => number;\n\n/** Total milliseconds of a list like \"1h, 30m\". */\nexport function total(list: string): number {\n  return list.split(',').map((part) => ms(part.trim())).reduce((a, b) => a + b, 0);\n}\n",
    );
    await writeFile(
      path.join(ws, 'proj', 'test', 'duration.test.js'),
      "const { strictEqual } = require('node:assert');\nconst { test } = require('node:test');\nconst { total } = require('../dist/duration.js');\n\ntest('adds durations', () => {\n  strictEqual(total('1h, 30m'), 5400000);\n  strictEqual(total('2s'), 2000);\n});\n",
    );
    await mkdir(path.join(ws, 'c'));
    await writeFile(path.join(ws, 'c', 'hello.c'), '#include <stdio.h>\nint main(void) { printf("hello from C %d\\n", 6 * 7); return 0; }\n');
    await writeFile(path.join(ws, 'c', 'Makefile'), 'hello: hello.c\n\t$(CC) -O2 -Wall -o $@ $<\n');
    await mkdir(path.join(ws, 'data'));
    await writeFile(path.join(ws, 'data', 'sales.csv'), 'region,product,amount\nnorth,apples,10\nsouth,apples,5\nnorth,pears,7\nsouth,pears,3\nnorth,apples,1\n');
    // Some networks (this workplace's among them) inspect TLS with a CA of their own that the host
    // trusts and Debian's bundle in the guest does not: npm gets the host's bundle, for this test only.
    await cp(HOST_CA_BUNDLE, path.join(ws, '.host-ca.pem'));
    // the workspace is a git repository owned by the host user, not by the sandbox's user
    execFileSync('git', ['init', '-q', ws]);

    index = http.createServer((req, res) => {
      indexRequests.push(req.url ?? '');
      if (req.url === '/simple/cwtoy/') {
        res.setHeader('content-type', 'text/html');
        res.end(`<!DOCTYPE html><html><body><a href="/files/${WHEEL}">${WHEEL}</a></body></html>`);
      } else if (req.url === `/files/${WHEEL}`) {
        readFile(path.join(root.dir, 'wheels', WHEEL)).then((b) => res.end(b), () => res.writeHead(500).end());
      } else res.writeHead(404).end('not here');
    });
    await new Promise<void>((r) => index.listen(0, '127.0.0.1', r));
    indexPort = (index.address() as AddressInfo).port;

    const wheelIndex = `127.0.0.1:${indexPort}`;
    // Some networks (this workplace's among them) resolve the registry to an address in a special
    // range (e.g. 203.0.113.0/24), which the proxy refuses unless that exact address is listed too.
    const registryIps = (await lookup(REGISTRY, { all: true })).map((a) => a.address).filter((ip) => classifyAddress(ip).range);
    if (registryIps.length) console.log(`toolbox: ${REGISTRY} resolves to ${registryIps.join(', ')} here (a special range): listed by address as well`);
    withRegistry = new EgressProxy({ task: 'toolbox', policy: new EgressPolicy({ allowed: [REGISTRY, ...registryIps, wheelIndex], denied: [] }), audit });
    withoutRegistry = new EgressProxy({ task: 'toolbox-no-registry', policy: new EgressPolicy({ allowed: [wheelIndex], denied: [] }), audit });
    current = withRegistry;
    // one pair of sockets; the test switches which proxy (which policy) the guest's connections reach
    closeSockets = await listenEgressSockets(egressSocketPaths('toolbox'), (s: Duplex) => current.handleHttp(s), (s: Duplex) => current.handleSocks(s));

    client = startHelper();
    vm = await bootGuest(client, ws, path.join(root.dir, 'sessions'), 'toolbox');
    sb = GuestSandbox.for(vm);
  },
  { timeout: 300_000 },
);

after(async () => {
  await vm?.stop().catch(() => undefined);
  await client?.dispose();
  await closeSockets?.();
  await withRegistry?.close();
  await withoutRegistry?.close();
  index?.close();
  await root?.dispose();
});

describe('the guest toolbox', { timeout: 1_800_000 }, () => {
  it('has the listed tools on PATH for the sandbox user', { timeout: 120_000 }, async () => {
    const tools = ['node', 'npm', 'python3', 'pip3', 'gcc', 'g++', 'make', 'pkg-config', 'jq', 'rg', 'fd', 'unzip', 'zip', 'tree', 'patch', 'file', 'less', 'sqlite3', 'ssh', 'git', 'curl'];
    const r = await run(`for t in ${tools.join(' ')}; do command -v $t >/dev/null || echo MISSING $t; done; node --version; echo '{"a":[1,2]}' | jq -c '.a | add'; echo 'select 6*7;' | sqlite3; fd --version`);
    assert.equal(r.code, 0, out(r));
    assert.doesNotMatch(out(r), /MISSING/);
    assert.match(r.stdout.toString(), /^v\d+\.\d+\.\d+\n3\n42\nfd(find)? \d/);
  });

  it('git: an identity, /workspace trusted although the host user owns it, no credential helper', { timeout: 120_000 }, async () => {
    const r = await run('git status --short --branch && git -c commit.gpgsign=false commit -q --allow-empty -m probe && git log -1 --format="%an <%ae>" && git config --get-all credential.helper | grep -c . ; true');
    assert.equal(r.code, 0, out(r));
    const lines = r.stdout.toString().trim().split('\n');
    assert.match(lines[0]!, /^## /, out(r));
    assert.ok(lines.includes('Cowork agent <agent@cowork.invalid>'), out(r));
    assert.equal(lines.at(-1), '0', `a credential helper is configured: ${out(r)}`);
  });

  it('`npm ci && npm test` of a TypeScript project, through the proxy to the npm registry', { timeout: 900_000 }, async () => {
    // npm's own retries, a little more patient than its default (2): this network's TLS interception
    // has reset a tarball download mid-way once (ECONNRESET, 2026-12-07); a reset by our proxy would
    // show in the audit lines printed below
    let r = await timed('npm ci && npm test (cold cache)', () => run(`cd proj && ${NPM_CA} npm ci --no-audit --fetch-retries=4 && npm test`, 840_000));
    // npm does not retry a body cut off mid-way ("network aborted"); the registry is the real one,
    // reached through this machine's TLS-intercepting network, which did that once in each of two
    // full runs (2026-12-07). One more install, said in the output; a fault of ours repeats.
    if (r.code !== 0 && /ECONNRESET|network aborted|ETIMEDOUT|EAI_AGAIN/.test(out(r))) {
      console.log(`# toolbox: npm ci met a network error, installing once more:\n${out(r).split('\n').filter((l) => l.includes('ERR!')).slice(0, 4).join('\n')}\n${registryTail()}`);
      r = await timed('npm ci && npm test (second attempt)', () => run(`cd proj && ${NPM_CA} npm ci --no-audit --fetch-retries=4 && npm test`, 840_000));
    }
    assert.equal(r.code, 0, `${out(r)}\nthe proxy's last records for the registry:\n${registryTail()}`);
    assert.match(out(r), /# pass 1\b/);
    assert.match(out(r), /# fail 0\b/);
    const fetched = audit.records.filter((x) => x.task === 'toolbox' && x.host === REGISTRY && x.allowed);
    assert.ok(fetched.length > 0, 'the install went through the proxy to the registry');
  });

  it('python3 -m venv and pip install from the wheel index on the host loopback', { timeout: 600_000 }, async () => {
    // NO_PROXY names the sandbox's own loopback; the host's loopback is reached through the proxy
    const r = await timed('venv + pip install', () =>
      run(
        `cd /workspace && python3 -m venv .venv && NO_PROXY= no_proxy= .venv/bin/pip install --no-input --index-url http://127.0.0.1:${indexPort}/simple/ cwtoy && .venv/bin/python -c 'import cwtoy; print(cwtoy.greet())'`,
        540_000,
      ),
    );
    assert.equal(r.code, 0, out(r));
    assert.match(r.stdout.toString(), /Successfully installed cwtoy-1\.0\.0/);
    assert.match(r.stdout.toString(), /hello from a wheel\n$/);
    assert.ok(indexRequests.includes(`/files/${WHEEL}`), `the wheel came from the host index: ${indexRequests.join(' ')}`);
    const outside = await run('pip install --index-url http://127.0.0.1:1/simple/ cwtoy 2>&1; true');
    assert.match(out(outside), /externally-managed-environment/, 'pip outside a venv is refused, not half-installed');
  });

  it('make builds a C file and it runs', { timeout: 300_000 }, async () => {
    const r = await timed('make + run', () => run('make -C c && ./c/hello'));
    assert.equal(r.code, 0, out(r));
    assert.match(r.stdout.toString(), /hello from C 42\n$/);
  });

  it('with the registry off the allowed list the same install fails, and the output names the host', { timeout: 600_000 }, async () => {
    current = withoutRegistry;
    try {
      // an empty cache, so npm has to ask the registry
      const r = await timed('npm ci refused', () => run(`cd proj && rm -rf node_modules && ${NPM_CA} npm ci --no-audit --cache /tmp/npm-refused-cache --fetch-retries=0`, 540_000));
      assert.notEqual(r.code, 0, out(r));
      assert.match(out(r), /registry\.npmjs\.org/);
      const refused = audit.records.filter((x) => x.task === 'toolbox-no-registry' && x.host === REGISTRY && !x.allowed);
      assert.ok(refused.length > 0, 'the proxy refused the registry');
      console.log(`toolbox: npm's words for the refusal: ${out(r).split('\n').filter((l) => /registry\.npmjs\.org|403|allowed/i.test(l)).slice(0, 4).join(' | ')}`);
    } finally {
      current = withRegistry;
    }
  });

  it('turns a CSV into an .xlsx summary with pandas and openpyxl, and writes a .docx', { timeout: 600_000 }, async () => {
    const script = [
      'import pandas as pd, openpyxl, docx',
      "df = pd.read_csv('/workspace/data/sales.csv')",
      "summary = df.groupby('region', as_index=False)['amount'].sum()",
      "summary.to_excel('/workspace/data/summary.xlsx', index=False, engine='openpyxl')",
      "ws = openpyxl.load_workbook('/workspace/data/summary.xlsx').active",
      "print([[c.value for c in row] for row in ws.iter_rows()])",
      'd = docx.Document()',
      "d.add_heading('Sales by region', 1)",
      "d.save('/workspace/data/report.docx')",
      "print(len(docx.Document('/workspace/data/report.docx').paragraphs))",
    ].join('\n');
    const r = await timed('pandas CSV → xlsx', () => sb.runArgv(['/usr/bin/python3', '-'], { stdin: script, timeoutMs: 540_000 }));
    assert.equal(r.code, 0, out(r));
    assert.equal(r.stdout.toString(), "[['region', 'amount'], ['north', 18], ['south', 8]]\n1\n");
  });
});
