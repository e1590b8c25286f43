import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { podAnnotator } from '../../src/agent/annotate-pod.js';
import { cniEndpoint } from '../../src/agent/cni-endpoint.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { startTestApiServer } from '../helpers/apiserver.js';

// The agent's own writes and reads (src/k8s/lean/) against the embedded API server; objects made and read back with client-node.
test("the agent's client: annotations set and the reason cleared by merge patch; a CNI ADD reads the pod and its namespace; a missing pod is a retryable ERR_CNI_POD", async () => {
  const api = await startTestApiServer();
  try {
    const core = api.kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'shop', labels: { 'warren.io/dataplane-mode': 'ambient' } } } });
    const pod = await core.createNamespacedPod({ namespace: 'shop', body: { metadata: { name: 'web', annotations: { team: 'a' } }, spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'busybox' }] } } });
    const { api: client } = await api.agentClient();

    const annotate = podAnnotator(client);
    await annotate({ namespace: 'shop', name: 'web' }, 'failed', 'no netns');
    assert.deepEqual((await core.readNamespacedPod({ namespace: 'shop', name: 'web' })).metadata?.annotations, { team: 'a', 'warren.io/redirection': 'failed', 'warren.io/redirection-reason': 'no netns' });
    await annotate({ namespace: 'shop', name: 'web' }, 'enabled');
    assert.deepEqual((await core.readNamespacedPod({ namespace: 'shop', name: 'web' })).metadata?.annotations, { team: 'a', 'warren.io/redirection': 'enabled' });

    const enrolled: string[] = [];
    const endpoint = cniEndpoint({
      nodeName: 'node-1',
      policy: { excludedNamespaces: new Set() },
      synced: () => true,
      api: client,
      cachedNamespaceLabels: () => undefined, // not cached yet: the namespace is read from the API server
      enroll: async (p) => void enrolled.push(`${p.namespace}/${p.name}`),
      unenroll: async () => {},
      timeAdd: () => () => {},
    });
    const req = { podName: 'web', podNamespace: 'shop', podUid: pod.metadata!.uid!, containerId: 'c1', netns: '/var/run/netns/x', ips: ['10.0.0.5'] };
    assert.deepEqual(await endpoint.add(req), { enrolled: true });
    assert.deepEqual(enrolled, ['shop/web']);
    await assert.rejects(endpoint.add({ ...req, podName: 'gone' }), (err: unknown) => err instanceof WarrenError && err.code === 'ERR_CNI_POD' && err.retryable && /answered 404/.test(err.message));
  } finally {
    await api.stop();
  }
});
