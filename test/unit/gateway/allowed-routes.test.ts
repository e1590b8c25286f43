import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admitsRoute } from '../../../src/gateway/allowed-routes.js';

const gateway = (allowedRoutes?: unknown): unknown => ({
  metadata: { namespace: 'infra', name: 'wp' },
  spec: { gatewayClassName: 'warren-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', ...(allowedRoutes === undefined ? {} : { allowedRoutes }) }] },
});

test('Same is the default: routes from the Gateway namespace attach, others do not and the message names the listener', () => {
  assert.deepEqual(admitsRoute(gateway(), 'infra', 'infra', {}), { allowed: true });
  const other = admitsRoute(gateway(), 'infra', 'shop', {});
  assert.equal(other.allowed, false);
  assert.match(!other.allowed ? other.message : '', /listener mesh admits routes from its own namespace infra only/);
  assert.equal(admitsRoute(gateway({ namespaces: { from: 'Same' } }), 'infra', 'shop', {}).allowed, false);
});

test('All admits every namespace', () => {
  assert.equal(admitsRoute(gateway({ namespaces: { from: 'All' } }), 'infra', 'shop', undefined).allowed, true);
});

test('Selector admits namespaces whose labels match matchLabels and matchExpressions', () => {
  const gw = gateway({ namespaces: { from: 'Selector', selector: { matchLabels: { mesh: 'on' }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['untrusted'] }] } } });
  assert.equal(admitsRoute(gw, 'infra', 'shop', { mesh: 'on' }).allowed, true);
  assert.equal(admitsRoute(gw, 'infra', 'shop', { mesh: 'on', tier: 'web' }).allowed, true);
  assert.equal(admitsRoute(gw, 'infra', 'shop', { mesh: 'on', tier: 'untrusted' }).allowed, false);
  assert.equal(admitsRoute(gw, 'infra', 'shop', { mesh: 'off' }).allowed, false);
  assert.equal(admitsRoute(gw, 'infra', 'shop', undefined).allowed, false, 'an unknown namespace is not admitted');
  // the Gateway's own namespace is admitted only if its labels match too (Selector replaces Same)
  assert.equal(admitsRoute(gw, 'infra', 'infra', {}).allowed, false);
  const exists = gateway({ namespaces: { from: 'Selector', selector: { matchExpressions: [{ key: 'mesh', operator: 'Exists' }] } } });
  assert.equal(admitsRoute(exists, 'infra', 'shop', { mesh: '' }).allowed, true);
  assert.equal(admitsRoute(exists, 'infra', 'shop', {}).allowed, false);
  assert.equal(admitsRoute(gateway({ namespaces: { from: 'Selector', selector: {} } }), 'infra', 'shop', {}).allowed, true, 'an empty selector selects every namespace');
});

test('fail closed: Selector without a selector, or an unreadable listener, admits nothing; an unreadable Gateway admits only its own namespace', () => {
  assert.equal(admitsRoute(gateway({ namespaces: { from: 'Selector' } }), 'infra', 'shop', { any: 'x' }).allowed, false);
  const bad = admitsRoute(gateway({ namespaces: { from: 'Everyone' } }), 'infra', 'infra', {});
  assert.equal(bad.allowed, false);
  assert.match(!bad.allowed ? bad.message : '', /spec\.listeners\.0\.allowedRoutes cannot be read/);
  assert.equal(admitsRoute(undefined, 'infra', 'infra', {}).allowed, true);
  assert.equal(admitsRoute(undefined, 'infra', 'shop', {}).allowed, false);
});

test('one admitting listener is enough', () => {
  const gw = { spec: { listeners: [{ name: 'a' }, { name: 'b', allowedRoutes: { namespaces: { from: 'All' } } }] } };
  assert.equal(admitsRoute(gw, 'infra', 'shop', {}).allowed, true);
});
