import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalIp, classifyAddress, ipBytes, SPECIAL_RANGES } from '../../extension/egress/addresses';
import { type EgressRefused, resolveChecked } from '../../extension/egress/connect';
import { checkHost, splitHostPort } from '../../extension/egress/hostname';
import { addressProblem, EgressPolicy, parseRule } from '../../extension/egress/policy';

describe('egress policy rules', () => {
  it('parses names, wildcards, ports and IP literals', () => {
    assert.deepEqual(parseRule('*.NPMJS.org'), { raw: '*.NPMJS.org', host: 'npmjs.org', wildcard: true, port: undefined, ip: false });
    assert.equal(parseRule('example.com:8443').port, 8443);
    assert.equal(parseRule('127.0.0.1:9000').ip, true);
    assert.equal(parseRule('[::1]:9000').host, '::1');
    assert.throws(() => parseRule('http://x/'), /not a host name/);
    assert.throws(() => parseRule('example.com:70000'), /invalid port/);
  });

  const policy = new EgressPolicy({ allowed: ['registry.npmjs.org', '*.pypi.org', 'api.anthropic.com', 'example.com:8443', '203.0.113.7', 'internal.corp'], denied: ['*.evil.example', 'internal.corp'], modelHosts: ['gateway.mycorp.example'] });

  it('allows listed names, wildcard subdomains and ports exactly', () => {
    assert.equal(policy.decide('registry.npmjs.org', 443)?.allowed, true);
    assert.equal(policy.decide('REGISTRY.NPMJS.ORG.', 443)?.allowed, true, 'case and trailing dot do not matter');
    assert.equal(policy.decide('files.pypi.org', 443)?.allowed, true);
    assert.equal(policy.decide('pypi.org', 443), undefined, 'a wildcard does not cover the bare domain');
    assert.equal(policy.decide('example.com', 8443)?.allowed, true);
    assert.equal(policy.decide('example.com', 443), undefined);
    assert.equal(policy.decide('npmjs.org.attacker.test', 443), undefined);
  });

  it('checks the denied list first and never allows the model API', () => {
    assert.deepEqual(policy.decide('internal.corp', 443), { allowed: false, rule: 'denied:internal.corp', reason: 'internal.corp is on the denied list' });
    assert.equal(policy.decide('a.evil.example', 80)?.allowed, false);
    const api = policy.decide('api.anthropic.com', 443);
    assert.equal(api?.allowed, false);
    assert.match(api?.allowed === false ? api.rule : '', /^model-api:/);
    assert.equal(policy.decide('gateway.mycorp.example', 443)?.allowed, false, 'the configured base URL host is a model host too');
  });

  it('refuses IP literals unless listed', () => {
    assert.equal(policy.decide('198.51.100.1', 443)?.allowed, false);
    assert.equal(policy.decide('203.0.113.7', 443)?.allowed, true);
  });

  it('lets a grant from the person extend the list for the task', () => {
    const p = new EgressPolicy({ allowed: [], denied: [] });
    assert.equal(p.decide('new.example', 443), undefined);
    p.grant('new.example');
    assert.equal(p.decide('new.example', 443)?.allowed, true);
  });
});

describe('egress address checks', () => {
  const policy = new EgressPolicy({ allowed: ['127.0.0.1:9000', '10.1.2.3', '169.254.169.254'], denied: [] });
  const own = new Set(['192.0.2.10']);
  const cases: [string, number, RegExp | undefined][] = [
    ['127.0.0.1', 80, /loopback/],
    ['127.0.0.1', 9000, undefined],
    ['::1', 80, /loopback/],
    ['::ffff:127.0.0.1', 80, /loopback/],
    ['169.254.169.254', 80, /metadata/],
    ['169.254.10.1', 80, /link-local/],
    ['fe80::1', 80, /link-local/],
    ['10.0.0.5', 80, /private/],
    ['10.1.2.3', 443, undefined],
    ['192.168.1.1', 80, /private/],
    ['172.20.0.1', 80, /private/],
    ['100.64.0.1', 80, /private/],
    ['fd12::1', 80, /private/],
    ['0.0.0.0', 80, /unspecified/],
    ['224.0.0.1', 80, /multicast/],
    ['192.0.2.10', 80, /this host/],
    ['93.184.216.34', 443, undefined],
  ];
  for (const [ip, port, want] of cases) {
    it(`${ip}:${port} → ${want ? want.source : 'allowed'}`, () => {
      const got = addressProblem(ip, port, policy, own);
      if (want) assert.match(got ?? '', want);
      else assert.equal(got, undefined);
    });
  }
});

describe('host-name gate (checkHost)', () => {
  const ok: [string, string][] = [
    ['Registry.NPMJS.org', 'registry.npmjs.org'],
    ['registry.npmjs.org.', 'registry.npmjs.org'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de'],
    ['_dmarc.example.com', '_dmarc.example.com'],
    ['a-b.c', 'a-b.c'],
    ['127.0.0.1', '127.0.0.1'],
    ['[::FFFF:127.0.0.1]', '::ffff:7f00:1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    [`${'a'.repeat(63)}.com`, `${'a'.repeat(63)}.com`],
  ];
  for (const [raw, want] of ok) {
    it(`accepts ${JSON.stringify(raw)} as ${want}`, () => {
      const r = checkHost(raw);
      assert.equal(r.ok && r.host, want);
    });
  }
  const bad: [string, RegExp][] = [
    ['evil.com\0.npmjs.org', /control/],
    ['evil.com\n.npmjs.org', /control/],
    ['evil\x7f.com', /control/],
    ['evil .com', /space/],
    ['bücher.de', /non-ASCII.*punycode/],
    ['xn--zz.de', /punycode/],
    ['%2e', /label/],
    ['evil%2ecom.npmjs.org', /label/],
    ['a..b', /empty label/],
    ['.a', /empty label/],
    ['a.b..', /empty label/],
    ['-a.com', /label/],
    ['a-.com', /label/],
    ['a/b.com', /label/],
    ['a@b.com', /label/],
    [`${'a'.repeat(64)}.com`, /longer than 63/],
    [`${'a.'.repeat(127)}com`, /longer than 253/],
    ['', /empty/],
    ['.', /empty/],
    ['127.1', /numeric/],
    ['0x7f.0.0.1', /numeric/],
    ['1.2.3.04', /numeric/],
    ['2130706433', /numeric/],
    ['[127.0.0.1]', /IPv6/],
    ['[fe80::1%eth0]', /IPv6/],
    ['fe80::1%eth0', /not a name/],
    ['[::1', /IPv6/],
  ];
  for (const [raw, want] of bad) {
    it(`refuses ${JSON.stringify(raw)}`, () => {
      const r = checkHost(raw);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, want);
    });
  }

  it('splits host and port the same way for CONNECT, Host headers and URLs', () => {
    assert.deepEqual(splitHostPort('Example.com:443'), { ok: true, host: 'example.com', ip: 0, port: 443 });
    assert.deepEqual(splitHostPort('[::1]:8080'), { ok: true, host: '::1', ip: 6, port: 8080 });
    assert.deepEqual(splitHostPort('example.com', 80), { ok: true, host: 'example.com', ip: 0, port: 80 });
    assert.equal(splitHostPort('example.com').ok, false, 'CONNECT needs a port');
    assert.equal(splitHostPort('::1:443').ok, false, 'IPv6 with a port needs brackets');
    assert.equal(splitHostPort('example.com:0').ok, false);
    assert.equal(splitHostPort('example.com:65536').ok, false);
    assert.equal(splitHostPort('example.com:+443').ok, false);
    assert.equal(splitHostPort('[::1]x:1').ok, false);
  });

  it('the policy refuses what the gate refuses, and never lets a suffix trick match a wildcard', () => {
    const p = new EgressPolicy({ allowed: ['*.npmjs.org'], denied: [] });
    assert.equal(p.decide('evil.com\0.npmjs.org', 443)?.allowed, false);
    assert.equal(p.decide('evil.com\0.npmjs.org', 443)?.rule, 'bad-host');
    assert.equal(p.decide('x.npmjs.org.evil.com', 443), undefined);
    assert.equal(p.decide('xnpmjs.org', 443), undefined);
    assert.equal(p.decide('X.NPMJS.ORG.', 443)?.allowed, true);
    assert.throws(() => parseRule('*.evil\0.com'), /not a host name/);
    assert.throws(() => parseRule('*.127.0.0.1'), /not a host name/);
  });
});

describe('ports of allowed entries', () => {
  const p = new EgressPolicy({ allowed: ['registry.npmjs.org', '*.pypi.org', 'git.example:22', '203.0.113.7', '[2001:db8::1]:8443'], denied: ['bad.example'] });
  it('an entry without a port covers 80 and 443 only', () => {
    assert.equal(p.decide('registry.npmjs.org', 443)?.allowed, true);
    assert.equal(p.decide('registry.npmjs.org', 80)?.allowed, true);
    assert.equal(p.decide('registry.npmjs.org', 22), undefined);
    assert.equal(p.decide('registry.npmjs.org', 8443), undefined);
    assert.equal(p.decide('files.pypi.org', 22), undefined);
    assert.equal(p.decide('203.0.113.7', 22)?.allowed, false, 'an IP literal too');
  });
  it('"host:port" allows exactly that port', () => {
    assert.equal(p.decide('git.example', 22)?.allowed, true);
    assert.equal(p.decide('git.example', 443), undefined);
    assert.equal(p.decide('2001:db8::1', 8443)?.allowed, true);
    assert.equal(p.decide('2001:0db8:0:0::1', 8443)?.allowed, true, 'any spelling of the listed IPv6 address');
  });
  it('a denied entry without a port denies every port', () => {
    assert.equal(p.decide('bad.example', 22)?.allowed, false);
  });
});

describe('the special-range table', () => {
  const cases: [string, RegExp | undefined][] = [
    ['0.1.2.3', /unspecified/],
    ['10.9.8.7', /private/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['100.127.255.255', /carrier-grade NAT/],
    ['100.128.0.1', undefined],
    ['127.255.0.1', /loopback/],
    ['169.254.169.254', /metadata/],
    ['169.254.170.2', /metadata/],
    ['169.254.1.1', /link-local/],
    ['172.31.255.255', /private/],
    ['172.32.0.1', undefined],
    ['192.0.0.8', /reserved/],
    ['192.0.2.1', /documentation/],
    ['192.88.99.1', /6to4 relay/],
    ['192.168.0.1', /private/],
    ['198.18.0.1', /benchmarking/],
    ['198.19.255.255', /benchmarking/],
    ['198.20.0.1', undefined],
    ['198.51.100.1', /documentation/],
    ['203.0.113.1', /documentation/],
    ['224.0.0.251', /multicast/],
    ['239.255.255.250', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['240.0.0.1', /reserved/],
    ['168.63.129.16', /Azure/],
    ['100.100.100.200', /Alibaba/],
    ['8.8.8.8', undefined],
    ['::', /unspecified/],
    ['::1', /loopback/],
    ['::ffff:127.0.0.1', /IPv4-mapped address of 127.0.0.1, a loopback/],
    ['::ffff:7f00:1', /IPv4-mapped address of 127.0.0.1, a loopback/],
    ['0:0:0:0:0:ffff:a9fe:a9fe', /metadata/],
    ['::ffff:8.8.8.8', undefined],
    ['::127.0.0.1', /IPv4-compatible.*127.0.0.1/],
    ['::8.8.8.8', /IPv4-compatible/],
    ['::ffff:0:127.0.0.1', /SIIT.*127.0.0.1/],
    ['64:ff9b::127.0.0.1', /NAT64 address of 127.0.0.1, a loopback/],
    ['64:ff9b::a9fe:a9fe', /NAT64.*metadata/],
    ['64:ff9b::808:808', undefined],
    ['64:ff9b:1::1', /local-use NAT64/],
    ['100::1', /discard-only/],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', /Teredo/],
    ['2001:2::1', /benchmarking/],
    ['2001:db8::1', /documentation/],
    ['2001:10::1', /ORCHID/],
    ['2001:20::1', /ORCHIDv2/],
    ['2002:7f00:1::', /6to4.*127.0.0.1/],
    ['2002:a9fe:a9fe::1', /6to4.*169.254.169.254/],
    ['3fff::1', /documentation/],
    ['fc00::1', /unique local/],
    ['fd00:ec2::254', /metadata/],
    ['fd00:ec2::253', /unique local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['febf::1', /link-local/],
    ['fec0::1', /site-local/],
    ['ff02::1', /multicast/],
    ['2606:4700::1111', undefined],
    ['not-an-ip', /not an IP address/],
  ];
  for (const [ip, want] of cases) {
    it(`${ip} → ${want ? want.source : 'public'}`, () => {
      const c = classifyAddress(ip);
      if (want) assert.match(c.reason ?? '', want);
      else assert.equal(c.reason, undefined);
    });
  }

  it('every table entry has a reason and parses, and metadata entries are never overridable', () => {
    for (const r of SPECIAL_RANGES) {
      assert.ok(r.reason.length > 5, r.cidr);
      assert.ok(ipBytes(r.cidr.split('/')[0]!), r.cidr);
    }
    const listed = new EgressPolicy({ allowed: ['169.254.169.254', '[::ffff:169.254.169.254]', '168.63.129.16', '10.0.0.1'], denied: [] });
    assert.match(addressProblem('169.254.169.254', 80, listed, new Set()) ?? '', /metadata/);
    assert.match(addressProblem('::ffff:169.254.169.254', 80, listed, new Set()) ?? '', /metadata/);
    assert.match(addressProblem('168.63.129.16', 80, listed, new Set()) ?? '', /Azure/);
    assert.equal(addressProblem('10.0.0.1', 80, listed, new Set()), undefined, 'an exactly listed private address is the person\'s choice');
    assert.equal(addressProblem('::ffff:10.0.0.1', 80, listed, new Set()), undefined, 'in any spelling');
    assert.match(addressProblem('10.0.0.1', 22, listed, new Set()) ?? '', /private/, 'but on 80/443 only');
  });

  it('prints one canonical form per address', () => {
    assert.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(canonicalIp('::ffff:127.0.0.1'), '::ffff:7f00:1');
    assert.equal(canonicalIp('1:0:0:2:0:0:0:3'), '1:0:0:2::3');
    assert.equal(canonicalIp('1:0:0:2:3:4:5:6'), '1::2:3:4:5:6');
    assert.equal(canonicalIp('1:2:3:4:5:6:7:0'), '1:2:3:4:5:6:7:0');
    assert.equal(canonicalIp('::'), '::');
  });
});

describe('resolving an allowed name', () => {
  const p = new EgressPolicy({ allowed: ['*.example'], denied: [] });
  const own = new Set<string>();
  it('checks every address of the answer and refuses a mix of public and private', async () => {
    const mixed = () => Promise.resolve(['93.184.216.34', '10.0.0.1']);
    await assert.rejects(resolveChecked('a.example', 443, p, mixed, own), (e: EgressRefused) => e.rule === 'address' && /10.0.0.1 is a private/.test(e.message));
    const fine = () => Promise.resolve(['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946']);
    assert.equal(await resolveChecked('a.example', 443, p, fine, own), '93.184.216.34');
  });
  it('refuses an invalid name before asking DNS', async () => {
    let asked = 0;
    const r = () => (asked++, Promise.resolve(['93.184.216.34']));
    await assert.rejects(resolveChecked('a\0.example', 443, p, r, own), (e: EgressRefused) => e.rule === 'bad-host');
    assert.equal(asked, 0);
  });
});
