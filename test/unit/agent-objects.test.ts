import assert from 'node:assert/strict';
import { test } from 'node:test';
import { podView } from '../../src/agent/enrollment-plan.js';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { parseAgentNamespace, parseAgentPod } from '../../src/k8s/lean/agent-objects.js';
import { workloadNames } from '../../src/k8s/workload-name.js';

// A pod as the API server sends it (abridged): what the agent's caches keep of it must give the same decisions.
const apiPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-7d9f8-abcde',
    generateName: 'web-7d9f8-',
    namespace: 'shop',
    uid: 'u-1',
    resourceVersion: '42',
    labels: { app: 'web', 'pod-template-hash': '7d9f8' },
    annotations: { 'warren.io/redirection': 'enabled', 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(4000) },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f8', uid: 'rs-1', controller: true }],
    managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } }],
  },
  spec: { nodeName: 'node-1', serviceAccountName: 'web', containers: [{ name: 'app', image: 'busybox', ports: [{ containerPort: 80 }] }], volumes: [{ name: 'v', emptyDir: {} }] },
  status: { phase: 'Running', podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }], conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: 't' }], containerStatuses: [{ name: 'app', ready: true }] },
};

test('the cached pod keeps every field the agent decides on, and drops the rest', () => {
  const pod = parseAgentPod(structuredClone(apiPod));
  const full = structuredClone(apiPod) as never;
  assert.deepEqual(podView(pod), podView(full), 'enrollment sees the same pod');
  assert.deepEqual(workloadNames(pod), workloadNames(full), 'telemetry names the same workload');
  assert.deepEqual(buildClusterIndex([pod], [], []).workloadByIp('10.0.0.5'), buildClusterIndex([full], [], []).workloadByIp('10.0.0.5'), 'the cluster index holds the same record');
  assert.deepEqual(pod.status?.conditions, [{ type: 'Ready', status: 'True' }], 'readiness (waypoint index)');
  assert.deepEqual(pod.metadata?.annotations, { 'warren.io/redirection': 'enabled' }, "only warren's annotations");
  assert.equal((pod.spec as unknown as Record<string, unknown>).containers, undefined);
  assert.equal((pod.metadata as unknown as Record<string, unknown>).managedFields, undefined);
  assert.ok(JSON.stringify(pod).length < JSON.stringify(apiPod).length / 5);
});

test('a pod or namespace the agent cannot use is refused naming the field', () => {
  assert.throws(() => parseAgentPod({ metadata: { name: 'p', labels: { a: 1 } } }), /metadata.*labels/s);
  assert.throws(() => parseAgentPod({ metadata: {} }), /metadata.*name/s);
  assert.deepEqual(parseAgentNamespace({ metadata: { name: 'shop', labels: { 'warren.io/dataplane-mode': 'ambient' }, managedFields: [] }, status: { phase: 'Active' } }), {
    metadata: { name: 'shop', labels: { 'warren.io/dataplane-mode': 'ambient' } },
  });
});
