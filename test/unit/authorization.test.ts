import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorize, parseAuthorizationPolicy, type AuthorizationPolicy, type L4Request } from '../../src/policy/authorization.js';

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
    if (c.by !== undefined) assert.equal(d.policy, c.by);
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
});
