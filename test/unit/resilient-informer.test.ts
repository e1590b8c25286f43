import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiextensionsV1Api, CustomObjectsApi, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { startResilientInformer } from '../../src/k8s/resilient-informer.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { eventually, startTestApiServer } from '../helpers/apiserver.js';

test('synced waits for a list that succeeded: not while the list fails (CRD missing), at once after it', async () => {
  const api = await startTestApiServer();
  const logged: string[] = [];
  const custom = api.kc.makeApiClient(CustomObjectsApi);
  const group = { group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies' };
  const informer = startResilientInformer<KubernetesObject>(api.kc, {
    path: '/apis/security.warren.io/v1/authorizationpolicies',
    list: () => custom.listClusterCustomObject(group) as Promise<KubernetesListObject<KubernetesObject>>,
    onChange: () => {},
    restartDelayMs: 50,
    log: (msg) => logged.push(msg),
  });
  let synced = false;
  void informer.synced.then(() => (synced = true));
  try {
    // Positive signal: the list has failed (and been retried) twice; only then does "not synced" mean something.
    await eventually(() => logged.filter((m) => m === 'informer stopped, restarting').length >= 2, 'two failed lists');
    await Promise.resolve();
    assert.equal(synced, false, 'a failed list is not a sync');
    const ext = api.kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: typedCrds().find((c) => c.spec.names.plural === 'authorizationpolicies')! });
    await eventually(() => synced, 'synced once the list succeeds');
    assert.deepEqual(informer.list(), []);
  } finally {
    await informer.stop();
    await api.stop();
  }
});
