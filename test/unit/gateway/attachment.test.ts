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

test('binding: a missing waypoint and a waypoint-for mismatch are reported with a message, never bound', () => {
  const ref = { namespace: 'shop', name: 'wp' };
  assert.deepEqual(attach(ref, 'service', { waypointFor: 'service' }), { state: 'bound', waypoint: ref });
  assert.deepEqual(attach(ref, 'service', { waypointFor: 'all' }), { state: 'bound', waypoint: ref });
  assert.deepEqual(attach(ref, 'workload', { waypointFor: 'workload' }), { state: 'bound', waypoint: ref });
  const missing = attach(ref, 'service', undefined);
  assert.equal(missing.state, 'missing');
  assert.match((missing as { message: string }).message, /shop\/wp does not exist/);
  for (const [wf, kind] of [['workload', 'service'], ['service', 'workload'], ['none', 'service'], ['none', 'workload'], [undefined, 'service']] as const) {
    const a = attach(ref, kind, { waypointFor: wf });
    assert.equal(a.state, 'mismatch', `${wf} for ${kind}`);
  }
  assert.match((attach(ref, 'service', { waypointFor: 'workload' }) as { message: string }).message, /waypoint-for=workload\), not service traffic/);
});
