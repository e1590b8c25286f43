import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyRoutingApply, policyRoutingRemove, type PolicyRoutingState } from '../../../src/redirect/policy-routing.js';

const empty: PolicyRoutingState = { rules: { 4: [], 6: [] }, routes: { 4: [], 6: [] } };
const warrenRule = { priority: 32764, fwmark: '0x111', fwmask: '0xfff', table: '100' };
const warrenRoute = { type: 'local', dst: 'default', dev: 'lo' };

test('apply adds the rule only when missing and replaces the route (idempotent)', () => {
  assert.deepEqual(policyRoutingApply({ ipv4: true, ipv6: false }, empty), [
    ['-4', 'rule', 'add', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100'],
    ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100'],
  ]);
  const applied: PolicyRoutingState = { rules: { 4: [warrenRule], 6: [] }, routes: { 4: [warrenRoute], 6: [] } };
  assert.deepEqual(policyRoutingApply({ ipv4: true, ipv6: true }, applied), [
    ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100'],
    ['-6', 'rule', 'add', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100'],
    ['-6', 'route', 'replace', 'local', '::/0', 'dev', 'lo', 'table', '100'],
  ]);
});

test('remove deletes exactly warren\'s rule and route, nothing of others', () => {
  const state: PolicyRoutingState = {
    rules: { 4: [warrenRule, { priority: 100, fwmark: '0x111', fwmask: '0xfff', table: '100' }], 6: [] },
    routes: { 4: [warrenRoute, { type: 'unicast', dst: '10.0.0.0/8', dev: 'eth0' }], 6: [warrenRoute] },
  };
  assert.deepEqual(policyRoutingRemove(state), [
    ['-4', 'rule', 'del', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100'],
    ['-4', 'route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100'],
    ['-6', 'route', 'del', 'local', '::/0', 'dev', 'lo', 'table', '100'],
  ]);
  assert.deepEqual(policyRoutingRemove(empty), []);
});
