import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveMtlsMode, failClosedPeerAuthentication, parsePeerAuthentication, resolveMtlsMode } from '../../src/policy/peer-authentication.js';

const pa = (namespace: string, name: string, spec: object) => parsePeerAuthentication({ apiVersion: 'security.warren.io/v1', kind: 'PeerAuthentication', metadata: { namespace, name }, spec });
const web = { namespace: 'shop', labels: { app: 'web' } };

test('nothing set is PERMISSIVE; mesh, namespace and workload levels override in that order; UNSET inherits', () => {
  assert.equal(effectiveMtlsMode([], 'warren-system', web, 8080), 'PERMISSIVE');
  const mesh = pa('warren-system', 'default', { mtls: { mode: 'STRICT' } });
  assert.equal(effectiveMtlsMode([mesh], 'warren-system', web, 8080), 'STRICT');
  const ns = pa('shop', 'default', { mtls: { mode: 'PERMISSIVE' } });
  assert.equal(effectiveMtlsMode([mesh, ns], 'warren-system', web, 8080), 'PERMISSIVE');
  const wl = pa('shop', 'web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' } });
  assert.equal(effectiveMtlsMode([mesh, ns, wl], 'warren-system', web, 8080), 'STRICT');
  assert.equal(effectiveMtlsMode([mesh, ns, wl], 'warren-system', { namespace: 'shop', labels: { app: 'db' } }, 8080), 'PERMISSIVE', 'the selector does not match db');
  const unset = pa('shop', 'web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'UNSET' } });
  assert.equal(effectiveMtlsMode([mesh, unset], 'warren-system', web, 8080), 'STRICT', 'UNSET inherits the mesh');
  assert.equal(effectiveMtlsMode([pa('other', 'default', { mtls: { mode: 'STRICT' } })], 'warren-system', web, 8080), 'PERMISSIVE', "another namespace's policy");
});

test('port-level modes of a workload policy win for their port (Istio example, apiVersion changed)', () => {
  const wl = pa('shop', 'web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } });
  assert.equal(effectiveMtlsMode([wl], 'warren-system', web, 8080), 'DISABLE');
  assert.equal(effectiveMtlsMode([wl], 'warren-system', web, 9000), 'STRICT');
});

test('the resolution names the policy and level that set the mode, for explain', () => {
  const mesh = pa('warren-system', 'default', { mtls: { mode: 'STRICT' } });
  const wl = pa('shop', 'web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'UNSET' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } });
  assert.deepEqual(resolveMtlsMode([], 'warren-system', web, 8080), { mode: 'PERMISSIVE', level: 'default' });
  assert.deepEqual(resolveMtlsMode([mesh, wl], 'warren-system', web, 8080), { mode: 'DISABLE', level: 'port', policy: 'shop/web' });
  assert.deepEqual(resolveMtlsMode([mesh, wl], 'warren-system', web, 9000), { mode: 'STRICT', level: 'mesh', policy: 'warren-system/default' });
});

test('invalid objects are refused with the field named', () => {
  assert.throws(() => pa('shop', 'x', { mtls: { mode: 'strict' } }), /: spec\.mtls\.mode: /);
  assert.throws(() => pa('shop', 'x', { portLevelMtls: { http: { mode: 'STRICT' } } }), /portLevelMtls/);
  assert.throws(() => parsePeerAuthentication({ metadata: { name: 'x' } }), /: metadata\.namespace: /);
});

test('several policies at one level: the oldest by creationTimestamp wins (as istiod), the name only breaks ties', () => {
  const at = (namespace: string, name: string, created: string, spec: object) =>
    parsePeerAuthentication({ apiVersion: 'security.warren.io/v1', kind: 'PeerAuthentication', metadata: { namespace, name, creationTimestamp: created }, spec });
  const older = at('shop', 'zz-strict', '2026-01-01T00:00:00Z', { mtls: { mode: 'STRICT' } });
  const newer = at('shop', 'aa-permissive', '2026-06-01T00:00:00Z', { mtls: { mode: 'PERMISSIVE' } });
  assert.deepEqual(resolveMtlsMode([newer, older], 'warren-system', web, 8080), { mode: 'STRICT', level: 'namespace', policy: 'shop/zz-strict' });
  const wlOld = at('shop', 'zz-web', '2026-01-01T00:00:00Z', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'DISABLE' } });
  const wlNew = at('shop', 'aa-web', '2026-02-01T00:00:00Z', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' } });
  assert.equal(effectiveMtlsMode([wlNew, wlOld], 'warren-system', web, 8080), 'DISABLE', 'workload level too');
  const meshOld = at('warren-system', 'zz', '2025-01-01T00:00:00Z', { mtls: { mode: 'STRICT' } });
  const meshNew = at('warren-system', 'aa', '2025-03-01T00:00:00Z', { mtls: { mode: 'PERMISSIVE' } });
  assert.equal(effectiveMtlsMode([meshNew, meshOld], 'warren-system', web, 8080), 'STRICT', 'mesh level too');
  const tie = at('shop', 'bb-permissive', '2026-01-01T00:00:00Z', { mtls: { mode: 'PERMISSIVE' } });
  assert.equal(resolveMtlsMode([tie, older], 'warren-system', web, 8080).policy, 'shop/bb-permissive', 'same second: by name');
  assert.equal(
    at('shop', 'd', new Date('2026-01-01T00:00:00Z') as unknown as string, {}).created,
    Date.parse('2026-01-01T00:00:00Z'),
    'a Date from client-node works as the wire text does',
  );
});

test('an unknown field is refused, and an invalid PeerAuthentication counts as STRICT for what it selects', () => {
  assert.throws(() => pa('shop', 'x', { mtls: { mod: 'PERMISSIVE' } }), /spec\.mtls: Unrecognized key: "mod"/);
  assert.throws(() => pa('shop', 'x', { mtl: { mode: 'DISABLE' } }), /spec: Unrecognized key: "mtl"/);
  const stand = failClosedPeerAuthentication({ metadata: { namespace: 'shop', name: 'x' }, spec: { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'DISABLED' } } })!;
  assert.equal(effectiveMtlsMode([stand], 'warren-system', web, 8080), 'STRICT');
  assert.equal(effectiveMtlsMode([stand], 'warren-system', { namespace: 'shop', labels: { app: 'db' } }, 8080), 'PERMISSIVE', 'only what its selector picks');
});
