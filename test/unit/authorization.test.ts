import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorize, explainAuthorization, parseAuthorizationPolicy, type AuthorizationPolicy, type L4Request } from '../../src/policy/authorization.js';

const ROOT = 'warren-system';
const policy = (namespace: string, name: string, spec: object): AuthorizationPolicy =>
  parseAuthorizationPolicy({ apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', metadata: { namespace, name }, spec });
const req = (from: { ip?: string; principal?: string }, port = 8000, labels: Record<string, string> = { app: 'httpbin' }): L4Request => ({
  source: { ip: from.ip ?? '10.244.1.5', ...(from.principal ? { principal: from.principal } : {}) },
  destination: { namespace: 'foo', labels, ip: '10.244.2.7', port },
});
const sleep = 'spiffe://cluster.local/ns/default/sa/sleep';
const other = 'spiffe://cluster.local/ns/bar/sa/curl';

// Examples from istio.io (security/authorization docs), only apiVersion changed.
const cases: Array<{ name: string; policies: AuthorizationPolicy[]; request: L4Request; allow: boolean; by?: string }> = [
  { name: 'no policy: allowed', policies: [], request: req({ principal: sleep }), allow: true },
  { name: 'allow-nothing (spec: {}) denies everything', policies: [policy('foo', 'allow-nothing', {})], request: req({ principal: sleep }), allow: false },
  { name: 'deny-all (DENY, rules: [{}])', policies: [policy('foo', 'deny-all', { action: 'DENY', rules: [{}] })], request: req({ principal: sleep }), allow: false, by: 'foo/deny-all' },
  { name: 'mesh-wide deny-all in the root namespace', policies: [policy(ROOT, 'deny-all', { action: 'DENY', rules: [{}] })], request: req({ principal: sleep }), allow: false, by: `${ROOT}/deny-all` },
  { name: 'allow-all (rules: [{}]) next to allow-nothing', policies: [policy('foo', 'allow-nothing', {}), policy('foo', 'allow-all', { rules: [{}] })], request: req({}), allow: true, by: 'foo/allow-all' },
  ...(() => {
    const ns = policy('foo', 'allow-from-default', { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['default'] } }] }] });
    return [
      { name: 'allow from a namespace: default is allowed', policies: [ns], request: req({ principal: sleep }), allow: true, by: 'foo/allow-from-default' },
      { name: 'allow from a namespace: bar is not', policies: [ns], request: req({ principal: other }), allow: false },
      { name: 'allow from a namespace: plaintext has no namespace', policies: [ns], request: req({}), allow: false },
    ];
  })(),
  ...(() => {
    const p = policy('foo', 'tcp-policy', { selector: { matchLabels: { app: 'tcp-echo' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }], to: [{ operation: { ports: ['9000', '9001'] } }] }] });
    return [
      { name: 'principal to port: sleep → 9000', policies: [p], request: req({ principal: sleep }, 9000, { app: 'tcp-echo' }), allow: true },
      { name: 'principal to port: sleep → 9002', policies: [p], request: req({ principal: sleep }, 9002, { app: 'tcp-echo' }), allow: false },
      { name: 'principal to port: curl → 9000', policies: [p], request: req({ principal: other }, 9000, { app: 'tcp-echo' }), allow: false },
      { name: 'principal to port: another workload is not selected', policies: [p], request: req({ principal: other }, 9000, { app: 'httpbin' }), allow: true },
    ];
  })(),
  ...(() => {
    const p = policy('foo', 'ip-deny', { selector: { matchLabels: { app: 'httpbin' } }, action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.244.1.5', '10.244.3.0/24'] } }] }] });
    return [
      { name: 'deny ipBlocks: exact IP', policies: [p], request: req({ ip: '10.244.1.5', principal: sleep }), allow: false, by: 'foo/ip-deny' },
      { name: 'deny ipBlocks: inside the CIDR', policies: [p], request: req({ ip: '10.244.3.77' }), allow: false },
      { name: 'deny ipBlocks: elsewhere', policies: [p], request: req({ ip: '10.244.4.1' }), allow: true },
    ];
  })(),
  ...(() => {
    const p = policy('foo', 'when-ns', { action: 'ALLOW', rules: [{ when: [{ key: 'source.namespace', values: ['default'] }, { key: 'destination.port', notValues: ['8443'] }] }] });
    return [
      { name: 'when: both conditions hold', policies: [p], request: req({ principal: sleep }, 8000), allow: true },
      { name: 'when: notValues excludes the port', policies: [p], request: req({ principal: sleep }, 8443), allow: false },
      { name: 'when: source.ip CIDR', policies: [policy('foo', 'when-ip', { action: 'ALLOW', rules: [{ when: [{ key: 'source.ip', values: ['10.244.1.0/24'] }] }] })], request: req({ ip: '10.244.1.200' }), allow: true },
    ];
  })(),
  { name: 'notPrincipals and notNamespaces', policies: [policy('foo', 'not', { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['default'] } }] }] })], request: req({ principal: other }), allow: false },
  { name: 'principal wildcards: suffix', policies: [policy('foo', 'sfx', { rules: [{ from: [{ source: { principals: ['*/sa/sleep'] } }] }] })], request: req({ principal: sleep }), allow: true },
  { name: 'principals ["*"] needs an identity: plaintext is denied', policies: [policy('foo', 'authn', { rules: [{ from: [{ source: { principals: ['*'] } }] }] })], request: req({}), allow: false },
  { name: 'HTTP fields in ALLOW match nothing at L4', policies: [policy('foo', 'get-only', { rules: [{ from: [{ source: { namespaces: ['default'] } }], to: [{ operation: { methods: ['GET'] } }] }] })], request: req({ principal: sleep }), allow: false },
  { name: 'HTTP fields in DENY deny the whole L4 match', policies: [policy('foo', 'no-post', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['default'] } }], to: [{ operation: { methods: ['POST'] } }] }] })], request: req({ principal: sleep }), allow: false, by: 'foo/no-post' },
  { name: 'HTTP-field DENY still only covers its L4 part', policies: [policy('foo', 'no-post', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['default'] } }], to: [{ operation: { methods: ['POST'] } }] }] })], request: req({ principal: other }), allow: true },
  { name: 'DENY wins over a matching ALLOW', policies: [policy('foo', 'allow-all', { rules: [{}] }), policy('foo', 'deny-bar', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bar'] } }] }] })], request: req({ principal: other }), allow: false, by: 'foo/deny-bar' },
  { name: "another namespace's policy does not apply", policies: [policy('bar', 'deny-all', { action: 'DENY', rules: [{}] })], request: req({}), allow: true },
];

for (const c of cases) {
  test(`authorization: ${c.name}`, () => {
    const d = authorize(c.policies, ROOT, c.request);
    assert.equal(d.allow, c.allow, JSON.stringify(d));
    if (c.by !== undefined) assert.equal('policy' in d ? d.policy : undefined, c.by);
  });
}

test('policies using HTTP-only fields say which, so the agent can report that a waypoint is needed', () => {
  const p = policy('foo', 'get-only', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }], to: [{ operation: { methods: ['GET'], paths: ['/x'] } }], when: [{ key: 'request.headers[x-token]', values: ['a'] }] }] });
  assert.deepEqual(p.httpFields, ['rules[0].from[0].source.requestPrincipals', 'rules[0].to[0].operation.methods', 'rules[0].to[0].operation.paths', 'rules[0].when[0].key=request.headers[x-token]']);
  assert.deepEqual(policy('foo', 'l4', { rules: [{ to: [{ operation: { ports: ['80'] } }] }] }).httpFields, []);
});

test('invalid policies are refused naming the field', () => {
  assert.throws(() => policy('foo', 'x', { action: 'MAYBE' }), /spec\.action/);
  assert.throws(() => policy('foo', 'x', { action: 'CUSTOM', provider: { name: 'ext' } }), /CUSTOM is not supported/);
  assert.throws(() => policy('foo', 'x', { rules: [{ from: [{ source: { principal: ['typo'] } }] }] }), /rules\.0\.from\.0\.source/);
  // A DENY whose block silently matched nothing would let through what it was written to stop.
  assert.throws(() => policy('foo', 'x', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8', '10.1.0.0/'] } }] }] }), /rules\.0\.from\.0\.source\.ipBlocks\.1: must be an IP address or CIDR block/);
});

test('a decision names what decided: the DENY or ALLOW policy and rule, or the absence of a matching ALLOW', () => {
  const denyBar = policy('foo', 'deny-bar', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['192.0.2.0/24'] } }] }, { from: [{ source: { namespaces: ['bar'] } }] }] });
  const allowDefault = policy('foo', 'allow-default', { rules: [{ to: [{ operation: { ports: ['9999'] } }] }, { from: [{ source: { namespaces: ['default'] } }] }] });
  const meshAllow = policy(ROOT, 'allow-port-1', { rules: [{ to: [{ operation: { ports: ['1'] } }] }] });
  assert.deepEqual(authorize([allowDefault, denyBar], ROOT, req({ principal: other })), {
    allow: false,
    basis: 'deny-rule',
    policy: 'foo/deny-bar',
    rule: 1,
    http: false,
    reason: 'denied by AuthorizationPolicy foo/deny-bar rule 1',
  });
  assert.deepEqual(authorize([denyBar, allowDefault], ROOT, req({ principal: sleep })), { allow: true, basis: 'allow-rule', policy: 'foo/allow-default', rule: 1, reason: 'allowed by AuthorizationPolicy foo/allow-default rule 1' });
  assert.deepEqual(authorize([denyBar], ROOT, req({ principal: sleep })), { allow: true, basis: 'no-allow-policy', reason: 'no ALLOW policy applies to the destination' });
  const none = authorize([allowDefault, meshAllow, policy('foo', 'other-app', { selector: { matchLabels: { app: 'other' } }, rules: [{}] })], ROOT, req({ principal: other }));
  assert.equal(none.basis, 'no-allow-match');
  assert.deepEqual(none.basis === 'no-allow-match' && none.allowPolicies, [`${ROOT}/allow-port-1`, 'foo/allow-default'], 'the ALLOW policies that applied, mesh-wide first; not one whose selector misses');
  const http = authorize([policy('foo', 'no-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] })], ROOT, req({ principal: sleep }));
  assert.equal(http.basis === 'deny-rule' && http.http, true, 'a DENY that matched only through its L4 part says so');
  assert.match(http.reason, /HTTP fields are not visible at L4/);
});

test('the decision does not depend on the order of namespaces or on policies elsewhere in the cluster', () => {
  const mine = [policy('foo', 'allow-default', { rules: [{ from: [{ source: { namespaces: ['default'] } }] }] })];
  const elsewhere = Array.from({ length: 200 }, (_, i) => policy(`ns-${i % 20}`, `p${i}`, { action: i % 2 ? 'DENY' : 'ALLOW', rules: [{}] }));
  for (const r of [req({ principal: sleep }), req({ principal: other }), req({})]) {
    assert.deepEqual(authorize([...elsewhere, ...mine], ROOT, r), authorize(mine, ROOT, r));
    assert.deepEqual(authorize([...mine, ...elsewhere], ROOT, r), authorize(mine, ROOT, r));
  }
  const inRoot = policy(ROOT, 'deny-root-pods', { action: 'DENY', rules: [{}] });
  const rootDst: L4Request = { ...req({}), destination: { namespace: ROOT, labels: {}, ip: '10.244.2.9', port: 15012 } };
  assert.equal(authorize([inRoot], ROOT, rootDst).allow, false, 'policies of the root namespace also apply to its own pods');
});

test('explain: the same decision, every policy of the root and destination namespaces with the conditions each rule compared', () => {
  const policies = [
    policy('foo', 'allow-tcp', { selector: { matchLabels: { app: 'httpbin' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }], to: [{ operation: { ports: ['9000'] } }] }, { to: [{ operation: { methods: ['GET'] } }] }] }),
    policy('foo', 'deny-bar', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bar'] } }] }] }),
    policy('foo', 'other-app', { selector: { matchLabels: { app: 'other' } }, rules: [{}] }),
    policy(ROOT, 'allow-nothing', {}),
    policy('bar', 'not-mine', { action: 'DENY', rules: [{}] }),
  ];
  const r = req({ principal: sleep }, 8000);
  const e = explainAuthorization(policies, ROOT, r);
  assert.deepEqual(e.decision, authorize(policies, ROOT, r));
  assert.equal(e.decision.basis, 'no-allow-match');
  assert.deepEqual(
    e.evaluated.map((p) => [p.policy, p.action, p.applies]),
    [
      ['foo/deny-bar', 'DENY', true],
      [`${ROOT}/allow-nothing`, 'ALLOW', true],
      ['foo/allow-tcp', 'ALLOW', true],
      ['foo/other-app', 'ALLOW', false],
    ],
    'DENY first, mesh-wide before namespace; another namespace\'s policy is not listed',
  );
  const [deny, nothing, tcp, otherApp] = e.evaluated;
  assert.deepEqual(deny!.rules, [{ rule: 0, matched: false, conditions: ['from[0].source.namespaces ["bar"] did not match default'] }]);
  assert.equal(nothing!.note, 'no rules: allows nothing');
  assert.deepEqual(tcp!.rules[0], {
    rule: 0,
    matched: false,
    conditions: ['from[0].source.principals ["cluster.local/ns/default/sa/sleep"] matched cluster.local/ns/default/sa/sleep', 'to[0].operation.ports ["9000"] did not match 8000'],
  });
  assert.equal(tcp!.rules[1]!.matched, false);
  assert.match(tcp!.rules[1]!.http!, /rules\[1\]\.to\[0\]\.operation\.methods.*matches nothing/);
  assert.match(otherApp!.note!, /selector \{"app":"other"\} does not match/);

  const plain = explainAuthorization([policy('foo', 'when-ns', { rules: [{ when: [{ key: 'source.namespace', values: ['default'] }] }] })], ROOT, req({}));
  assert.equal(plain.decision.allow, false);
  assert.deepEqual(plain.evaluated[0]!.rules[0]!.conditions, ['when[0].values (source.namespace) ["default"] did not match (none: plaintext)']);
  const all = explainAuthorization([policy('foo', 'allow-all', { rules: [{}] })], ROOT, r);
  assert.deepEqual(all.evaluated[0]!.rules, [{ rule: 0, matched: true, conditions: [] }], 'an empty rule matches with nothing to compare');
});
