import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyRoutingBatch, unexpectedBatchErrors } from '../../../src/redirect/policy-routing.js';

test('one batch per family: apply adds the rule and replaces the route, remove deletes exactly those', () => {
  assert.equal(policyRoutingBatch('apply', 4), 'rule add fwmark 0x111/0xfff pref 32764 lookup 100\nroute replace local 0.0.0.0/0 dev lo table 100\n');
  assert.equal(policyRoutingBatch('apply', 6), 'rule add fwmark 0x111/0xfff pref 32764 lookup 100\nroute replace local ::/0 dev lo table 100\n');
  assert.equal(policyRoutingBatch('remove', 6), 'rule del fwmark 0x111/0xfff pref 32764 lookup 100\nroute del local ::/0 dev lo table 100\n');
});

test('only the idempotent answers are accepted: the rule already there on apply, entries already gone on remove', () => {
  // What `ip -force -batch` printed on this kernel (iproute2 6.1) for each case.
  const exists = 'RTNETLINK answers: File exists\nCommand failed -:1\n';
  assert.deepEqual(unexpectedBatchErrors('apply', ''), []);
  assert.deepEqual(unexpectedBatchErrors('apply', exists), []);
  const gone = 'RTNETLINK answers: No such file or directory\nCommand failed -:1\nRTNETLINK answers: No such process\nCommand failed -:2\n';
  assert.deepEqual(unexpectedBatchErrors('remove', gone), []);
  const neverApplied = 'RTNETLINK answers: No such file or directory\nCommand failed -:1\nError: FIB table does not exist.\nCommand failed -:2\n';
  assert.deepEqual(unexpectedBatchErrors('remove', neverApplied), [], 'a pod never enrolled: --uninstall finds nothing, fails nothing');
  assert.deepEqual(unexpectedBatchErrors('remove', 'RTNETLINK answers: Address family not supported by protocol\nCommand failed -:1\n'), [], 'IPv6 disabled: nothing to remove');

  assert.deepEqual(unexpectedBatchErrors('apply', 'Error: Nexthop device is not up.\nCommand failed -:2\n'), ['line 2: Error: Nexthop device is not up.']);
  assert.deepEqual(unexpectedBatchErrors('apply', 'RTNETLINK answers: File exists\nCommand failed -:2\n'), ['line 2: RTNETLINK answers: File exists'], 'a route that exists is no answer of ours');
  assert.deepEqual(unexpectedBatchErrors('remove', 'RTNETLINK answers: Operation not permitted\nCommand failed -:1\n'), ['line 1: RTNETLINK answers: Operation not permitted']);
  assert.deepEqual(unexpectedBatchErrors('remove', 'nsenter: cannot open /proc/1/ns/net: No such file or directory\n'), ['nsenter: cannot open /proc/1/ns/net: No such file or directory'], 'not a batch line');
});
