import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyRoutingRequest, unexpectedRoutingAnswers } from '../../../src/redirect/policy-routing.js';

test('the request per family: fwmark 0x111/0xfff, pref 32764, table 100; apply or delete', () => {
  assert.deepEqual(policyRoutingRequest('apply', 4), { apply: true, family: 4, mark: 0x111, mask: 0xfff, pref: 32764, table: 100 });
  assert.deepEqual(policyRoutingRequest('remove', 6), { apply: false, family: 6, mark: 0x111, mask: 0xfff, pref: 32764, table: 100 });
});

test('only the idempotent answers are accepted: the rule already there on apply, entries already gone on remove', () => {
  assert.deepEqual(unexpectedRoutingAnswers('apply', { rule: '', route: '' }), []);
  assert.deepEqual(unexpectedRoutingAnswers('apply', { rule: 'EEXIST', route: '' }), [], 'applied before: the rule is there');
  assert.deepEqual(unexpectedRoutingAnswers('remove', { rule: 'ENOENT', route: 'ESRCH' }), [], 'removed before');
  assert.deepEqual(unexpectedRoutingAnswers('remove', { rule: 'ENOENT', route: 'ENOENT' }), [], 'a pod never enrolled: --uninstall finds nothing, fails nothing');
  assert.deepEqual(unexpectedRoutingAnswers('remove', { rule: 'EAFNOSUPPORT', route: 'EAFNOSUPPORT' }), [], 'IPv6 disabled: nothing to remove');

  assert.deepEqual(unexpectedRoutingAnswers('apply', { rule: '', route: 'ENETDOWN' }), ['route: ENETDOWN']);
  assert.deepEqual(unexpectedRoutingAnswers('apply', { rule: '', route: 'EEXIST' }), ['route: EEXIST'], 'a route that exists is no answer of ours (it is replaced)');
  assert.deepEqual(unexpectedRoutingAnswers('apply', { rule: 'ENOENT', route: '' }), ['rule: ENOENT'], 'nothing to remove is no answer to an apply');
  assert.deepEqual(unexpectedRoutingAnswers('remove', { rule: 'EPERM', route: '' }), ['rule: EPERM']);
});
