import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DATAPLANE_MODE_LABEL, decideEnrollment, type PodFacts } from '../../src/k8s/enrollment.js';

const policy = { excludedNamespaces: new Set(['kube-system']) };
const pod = (over: Partial<PodFacts> = {}): PodFacts => ({ namespace: 'shop', labels: {}, hostNetwork: false, phase: 'Running', ...over });
const ambient = { [DATAPLANE_MODE_LABEL]: 'ambient' };

test('a labeled namespace enrolls its pods; unlabeled ones do not', () => {
  assert.deepEqual(decideEnrollment(ambient, pod(), policy), { enroll: true });
  assert.deepEqual(decideEnrollment({}, pod(), policy), { enroll: false, reason: 'not-labeled' });
  assert.deepEqual(decideEnrollment(undefined, pod(), policy), { enroll: false, reason: 'not-labeled' });
  assert.deepEqual(decideEnrollment({ [DATAPLANE_MODE_LABEL]: 'sidecar' }, pod(), policy), { enroll: false, reason: 'not-labeled' });
});

test('the pod label wins over the namespace: none opts out, ambient opts in', () => {
  assert.deepEqual(decideEnrollment(ambient, pod({ labels: { [DATAPLANE_MODE_LABEL]: 'none' } }), policy), { enroll: false, reason: 'opted-out' });
  assert.deepEqual(decideEnrollment({}, pod({ labels: { [DATAPLANE_MODE_LABEL]: 'ambient' } }), policy), { enroll: true });
  assert.deepEqual(decideEnrollment({ [DATAPLANE_MODE_LABEL]: 'none' }, pod(), policy), { enroll: false, reason: 'opted-out' });
});

test('host-network pods, excluded namespaces and finished pods are never enrolled', () => {
  assert.deepEqual(decideEnrollment(ambient, pod({ hostNetwork: true }), policy), { enroll: false, reason: 'host-network' });
  assert.deepEqual(decideEnrollment(ambient, pod({ namespace: 'kube-system', labels: { [DATAPLANE_MODE_LABEL]: 'ambient' } }), policy), { enroll: false, reason: 'excluded-namespace' });
  assert.deepEqual(decideEnrollment(ambient, pod({ phase: 'Succeeded' }), policy), { enroll: false, reason: 'terminal' });
});
