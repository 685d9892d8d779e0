import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
