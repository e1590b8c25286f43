import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planEnrollment, planReconcile, type PodView } from '../../src/agent/enrollment-plan.js';

const policy = { excludedNamespaces: new Set(['kube-system']) };
const pod = (name: string, over: Partial<PodView> = {}): PodView => ({ uid: `uid-${name}`, namespace: 'shop', name, ips: ['10.244.1.9'], labels: {}, hostNetwork: false, serviceAccount: 'default', phase: 'Running', ...over });
const labeled = new Map([['shop', { 'warren.io/dataplane-mode': 'ambient' }]]);

test('labeling a namespace plans its pods for enrollment, once', () => {
  const pods = [pod('a'), pod('b')];
  assert.deepEqual(planEnrollment(pods, labeled, new Set(), policy).enroll.map((p) => p.name), ['a', 'b']);
  assert.deepEqual(planEnrollment(pods, labeled, new Set(['uid-a']), policy).enroll.map((p) => p.name), ['b']);
});

test('unlabeling, opting out and deleted pods plan unenrollment', () => {
  const enrolled = new Set(['uid-a', 'uid-b', 'uid-gone']);
  const plan = planEnrollment([pod('a'), pod('b', { labels: { 'warren.io/dataplane-mode': 'none' } })], labeled, enrolled, policy);
  assert.deepEqual(plan.unenroll.sort(), ['uid-b', 'uid-gone']);
  assert.deepEqual(planEnrollment([pod('a')], new Map(), new Set(['uid-a']), policy).unenroll, ['uid-a']);
});

test('pods without an IP wait; skipped pods carry their reason', () => {
  const plan = planEnrollment([pod('new', { ips: [] }), pod('host', { hostNetwork: true })], labeled, new Set(), policy);
  assert.deepEqual(plan.enroll, []);
  assert.deepEqual(plan.skipped.map((s) => [s.pod.name, s.reason]), [['host', 'host-network']]);
});

test('a reconcile pass: unenrollments say whether the pod is gone, relabels only enrolled pods whose labels changed', () => {
  const enrolled = new Map([['uid-a', {}], ['uid-b', {}], ['uid-gone', {}]]);
  const a = pod('a', { labels: { tier: 'web' } });
  const b = pod('b', { labels: { 'warren.io/dataplane-mode': 'none' } });
  const plan = planReconcile([a, b, pod('c'), pod('', { uid: '' })], labeled, enrolled, policy);
  assert.deepEqual(plan.enroll.map((p) => p.name), ['c']);
  assert.deepEqual(plan.unenroll.sort((x, y) => x.uid.localeCompare(y.uid)), [{ uid: 'uid-b', podGone: false, podRef: b }, { uid: 'uid-gone', podGone: true }]);
  assert.deepEqual(plan.relabel, [{ uid: 'uid-a', labels: { tier: 'web' } }, { uid: 'uid-b', labels: b.labels }]);
  assert.deepEqual(planReconcile([pod('a')], labeled, new Map([['uid-a', {}]]), policy).relabel, [], 'same labels: nothing to do');
});
