import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attach, waypointFor, waypointRef } from '../../../src/gateway/attachment.js';

const use = (name: string, ns?: string): Record<string, string> => ({ 'warren.io/use-waypoint': name, ...(ns ? { 'warren.io/use-waypoint-namespace': ns } : {}) });

test("an object's own use-waypoint label beats its namespace's; none opts out; no label anywhere is no waypoint", () => {
  const ns = use('ns-wp');
  assert.deepEqual(waypointRef({ namespace: 'shop', labels: {} }, ns), { namespace: 'shop', name: 'ns-wp' });
  assert.deepEqual(waypointRef({ namespace: 'shop', labels: use('svc-wp') }, ns), { namespace: 'shop', name: 'svc-wp' });
  assert.equal(waypointRef({ namespace: 'shop', labels: use('none') }, ns), undefined, 'none opts out of the namespace waypoint');
  assert.equal(waypointRef({ namespace: 'shop', labels: {} }, use('none')), undefined);
  assert.equal(waypointRef({ namespace: 'shop', labels: {} }, {}), undefined);
  assert.equal(waypointRef({ namespace: 'shop', labels: {} }, undefined), undefined);
  assert.equal(waypointRef({ namespace: 'shop', labels: use('') }, ns), undefined, 'an empty value is no waypoint');
});

test('use-waypoint-namespace names another namespace, and goes with the label it sits beside', () => {
  assert.deepEqual(waypointRef({ namespace: 'shop', labels: use('shared', 'infra') }, {}), { namespace: 'infra', name: 'shared' });
  assert.deepEqual(waypointRef({ namespace: 'shop', labels: {} }, use('shared', 'infra')), { namespace: 'infra', name: 'shared' });
  // The namespace's other-namespace label does not redirect the object's own choice.
  assert.deepEqual(waypointRef({ namespace: 'shop', labels: use('mine') }, use('shared', 'infra')), { namespace: 'shop', name: 'mine' });
  // A use-waypoint-namespace label alone names nothing.
  assert.equal(waypointRef({ namespace: 'shop', labels: { 'warren.io/use-waypoint-namespace': 'infra' } }, undefined), undefined);
});

test('waypoint-for: service by default, the four values, anything else invalid', () => {
  assert.equal(waypointFor(undefined), 'service');
  assert.equal(waypointFor({}), 'service');
  for (const v of ['service', 'workload', 'all', 'none']) assert.equal(waypointFor({ 'warren.io/waypoint-for': v }), v);
  assert.equal(waypointFor({ 'warren.io/waypoint-for': 'Service' }), undefined);
});

const SAME = { namespace: 'shop', namespaceLabels: {} };
const mesh = (allowedRoutes?: object): unknown => [{ name: 'mesh', port: 15008, protocol: 'HBONE', ...(allowedRoutes ? { allowedRoutes } : {}) }];

test('binding: a missing waypoint and a waypoint-for mismatch are reported with a message, never bound', () => {
  const ref = { namespace: 'shop', name: 'wp' };
  const listeners = mesh();
  assert.deepEqual(attach(ref, 'service', { waypointFor: 'service', listeners }, SAME), { state: 'bound', waypoint: ref });
  assert.deepEqual(attach(ref, 'service', { waypointFor: 'all', listeners }, SAME), { state: 'bound', waypoint: ref });
  assert.deepEqual(attach(ref, 'workload', { waypointFor: 'workload', listeners }, SAME), { state: 'bound', waypoint: ref });
  const missing = attach(ref, 'service', undefined, SAME);
  assert.equal(missing.state, 'missing');
  assert.match((missing as { message: string }).message, /shop\/wp does not exist/);
  for (const [wf, kind] of [['workload', 'service'], ['service', 'workload'], ['none', 'service'], ['none', 'workload'], [undefined, 'service']] as const) {
    const a = attach(ref, kind, { waypointFor: wf, listeners }, SAME);
    assert.equal(a.state, 'mismatch', `${wf} for ${kind}`);
  }
  assert.match((attach(ref, 'service', { waypointFor: 'workload', listeners }, SAME) as { message: string }).message, /waypoint-for=workload\), not service traffic/);
});

test("another namespace's waypoint binds only with its consent (listener allowedRoutes.namespaces), else not-allowed: refused, with a message", () => {
  const ref = { namespace: 'infra', name: 'shared' };
  const from = (namespace: string, labels: Record<string, string> = {}) => ({ namespace, namespaceLabels: labels });
  const gw = (allowedRoutes?: object) => ({ waypointFor: 'service' as const, listeners: mesh(allowedRoutes) });
  // Same (the default): only the waypoint's own namespace
  assert.equal(attach(ref, 'service', gw(), from('infra')).state, 'bound');
  const refused = attach(ref, 'service', gw(), from('shop'));
  assert.equal(refused.state, 'not-allowed');
  assert.match((refused as { message: string }).message, /waypoint infra\/shared does not admit namespace shop: listener mesh admits routes from its own namespace infra only \(allowedRoutes\.namespaces\.from: Same\); its traffic is refused/);
  assert.equal(attach(ref, 'service', gw({ namespaces: { from: 'Same' } }), from('shop')).state, 'not-allowed');
  assert.equal(attach(ref, 'service', gw({ namespaces: { from: 'All' } }), from('shop')).state, 'bound');
  const selector = gw({ namespaces: { from: 'Selector', selector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } } });
  assert.equal(attach(ref, 'service', selector, from('shop', { 'kubernetes.io/metadata.name': 'shop' })).state, 'bound');
  assert.equal(attach(ref, 'service', selector, from('bank', { 'kubernetes.io/metadata.name': 'bank' })).state, 'not-allowed');
  assert.equal(attach(ref, 'service', selector, { namespace: 'shop', namespaceLabels: undefined }).state, 'not-allowed', 'a namespace not known: its labels cannot be matched');
  // Selector without a selector, or an unreadable listener, admits nothing: a malformed Gateway never widens binding
  assert.equal(attach(ref, 'service', gw({ namespaces: { from: 'Selector' } }), from('shop')).state, 'not-allowed');
  assert.equal(attach(ref, 'service', { waypointFor: 'service', listeners: [{ name: 'mesh', allowedRoutes: { namespaces: { from: 'Everyone' } } }] }, from('shop')).state, 'not-allowed');
  assert.equal(attach(ref, 'service', { waypointFor: 'service', listeners: 'garbage' }, from('shop')).state, 'not-allowed');
  // a waypoint-for mismatch is reported as such: it is not used either way
  assert.equal(attach(ref, 'workload', gw({ namespaces: { from: 'All' } }), from('shop')).state, 'mismatch');
});
