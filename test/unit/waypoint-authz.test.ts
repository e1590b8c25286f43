import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAuthorizationPolicy } from '../../src/policy/authorization.js';
import { authorizeL7, checkWaypointSupport, policyTargets, type L7Request, type TargetedPolicy } from '../../src/waypoint/l7-authorization.js';

const GW = { namespace: 'demo', name: 'waypoint' };
const policy = (name: string, spec: Record<string, unknown>): TargetedPolicy => {
  const obj = { metadata: { name, namespace: 'demo' }, spec: { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], ...spec } };
  const p = parseAuthorizationPolicy(obj);
  checkWaypointSupport(p);
  return { policy: p, targets: policyTargets(obj) };
};
const request = (method: string, path: string, o: { headers?: Record<string, string>; principal?: string; claims?: Record<string, unknown>; service?: string; tcp?: boolean } = {}): L7Request => ({
  source: { ip: '10.244.1.5', principal: 'spiffe://cluster.local/ns/demo/sa/client' },
  destination: { ip: '10.96.0.10', port: 80, namespace: 'demo', service: { namespace: 'demo', name: o.service ?? 'web' } },
  ...(o.tcp ? {} : { http: { method, path, host: 'web.demo.svc.cluster.local:80', header: (n: string) => o.headers?.[n], ...(o.principal ? { auth: { principal: o.principal, claims: o.claims ?? {}, audiences: [] } } : {}) } }),
});

test('DENY before ALLOW; with ALLOW policies a request must match one; other Services are not affected', () => {
  const ps = [policy('allow-get', { rules: [{ to: [{ operation: { methods: ['GET', 'DELETE'], paths: ['/api/*'] } }] }] }), policy('deny-delete', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })];
  assert.equal(authorizeL7(ps, GW, request('GET', '/api/x')).allow, true);
  const d = authorizeL7(ps, GW, request('DELETE', '/api/x'));
  assert.deepEqual([d.allow, d.policy], [false, 'demo/deny-delete']);
  assert.equal(authorizeL7(ps, GW, request('GET', '/other')).allow, false);
  assert.equal(authorizeL7(ps, GW, request('DELETE', '/x', { service: 'db' })).allow, true);
});

test('paths: exact, prefix, suffix, presence and {*}/{**} templates', () => {
  const allow = (paths: string[], path: string) => authorizeL7([policy('p', { rules: [{ to: [{ operation: { paths } }] }] })], GW, request('GET', path)).allow;
  assert.equal(allow(['/a'], '/a'), true);
  assert.equal(allow(['/a'], '/a/b'), false);
  assert.equal(allow(['/a/*'], '/a/b/c'), true);
  assert.equal(allow(['*.png'], '/img/x.png'), true);
  assert.equal(allow(['/users/{*}/profile'], '/users/42/profile'), true);
  assert.equal(allow(['/users/{*}/profile'], '/users/42/x/profile'), false);
  assert.equal(allow(['/files/{**}'], '/files/a/b/c'), true);
});

test('when: request headers, JWT claims and request principals; notValues', () => {
  const ps = [policy('w', { rules: [{ from: [{ source: { requestPrincipals: ['https://issuer/*'] } }], when: [{ key: 'request.auth.claims[groups]', values: ['admins'] }, { key: 'request.headers[x-env]', notValues: ['prod'] }] }] })];
  const withAuth = (claims: Record<string, unknown>, headers: Record<string, string> = {}) => authorizeL7(ps, GW, request('GET', '/', { principal: 'https://issuer/alice', claims, headers })).allow;
  assert.equal(withAuth({ groups: ['users', 'admins'] }), true);
  assert.equal(withAuth({ groups: ['users'] }), false);
  assert.equal(withAuth({ groups: ['admins'] }, { 'x-env': 'prod' }), false);
  assert.equal(authorizeL7(ps, GW, request('GET', '/')).allow, false, 'no token: no request principal');
});

test('TCP streams: an ALLOW rule with HTTP fields matches nothing, a DENY rule with HTTP fields denies its L4 match (fail closed)', () => {
  const allowGet = [policy('a', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })];
  assert.equal(authorizeL7(allowGet, GW, request('', '', { tcp: true })).allow, false);
  const denyDelete = [policy('d', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })];
  assert.equal(authorizeL7(denyDelete, GW, request('', '', { tcp: true })).allow, false);
  assert.equal(authorizeL7(denyDelete, GW, request('GET', '/')).allow, true);
});

test('targets: Gateway targets apply to all traffic through the waypoint; other kinds and foreign namespaces are refused', () => {
  const obj = (targetRefs: unknown[]) => ({ metadata: { name: 'x', namespace: 'demo' }, spec: { targetRefs } });
  assert.deepEqual(policyTargets(obj([{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }])), [{ kind: 'Gateway', namespace: 'demo', name: 'waypoint' }]);
  assert.throws(() => policyTargets(obj([{ kind: 'Deployment', group: 'apps', name: 'x' }])), /spec\.targetRefs\.0\.kind: apps\/Deployment is not a target/);
  assert.throws(() => policyTargets(obj([{ kind: 'Service', name: 'x', namespace: 'other' }])), /spec\.targetRefs\.0\.namespace: must be the policy's own namespace/);
  const gw = { policy: parseAuthorizationPolicy({ metadata: { name: 'g', namespace: 'demo' }, spec: { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }], action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } }), targets: [{ kind: 'Gateway' as const, namespace: 'demo', name: 'waypoint' }] };
  assert.equal(authorizeL7([gw], GW, request('GET', '/admin', { service: 'db' })).allow, false);
  assert.equal(authorizeL7([gw], { namespace: 'demo', name: 'other-waypoint' }, request('GET', '/admin')).allow, true);
});

test('when keys the waypoint cannot evaluate fail the policy (its stand-in denies), never ignored', () => {
  assert.throws(() => policy('sni', { rules: [{ when: [{ key: 'connection.sni', values: ['x'] }] }] }), /spec\.rules\.0\.when\.0\.key: "connection\.sni" is not evaluated by warren's waypoint/);
  assert.throws(() => policy('typo', { rules: [{ when: [{ key: 'request.header[x]', values: ['x'] }] }] }), /unknown attribute/);
});
