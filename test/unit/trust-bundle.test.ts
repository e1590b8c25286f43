import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { createRootCa } from '../../src/ca/signer.js';
import { renewalTime, retryDelay } from '../../src/identity/renewal.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { publishTrustBundle } from '../../src/ca/trust-bundle-publisher.js';
import { BUNDLE_CONFIGMAP, BUNDLE_KEY } from '../../src/identity/trust-bundle.js';
import { watchTrustBundle } from '../../src/identity/trust-bundle-watch.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { eventually, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

let api: TestApiServer;
let core: CoreV1Api;
let rootA: string;
let rootB: string;

before(async () => {
  api = await startTestApiServer();
  core = api.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'warren-system' } } });
  [rootA, rootB] = [(await createRootCa('cluster.local')).certPem, (await createRootCa('cluster.local')).certPem];
});

after(() => api.stop());

const bundleIn = async (namespace: string): Promise<string | undefined> => {
  try {
    return (await core.readNamespacedConfigMap({ namespace, name: BUNDLE_CONFIGMAP })).data?.[BUNDLE_KEY];
  } catch {
    return undefined;
  }
};

test('the CA publishes the bundle in every namespace, new ones too, and puts back edited or deleted copies', async () => {
  const publisher = publishTrustBundle(api.kc, rootA, () => {});
  try {
    await publisher.synced;
    for (const ns of ['default', 'kube-system', 'warren-system']) assert.equal(await bundleIn(ns), rootA, ns);
    await core.createNamespace({ body: { metadata: { name: 'late' } } });
    await eventually(async () => (await bundleIn('late')) === rootA, 'the bundle in a new namespace');
    await core.patchNamespacedConfigMap({ namespace: 'late', name: BUNDLE_CONFIGMAP, body: [{ op: 'replace', path: `/data/${BUNDLE_KEY}`, value: 'tampered' }] });
    await eventually(async () => (await bundleIn('late')) === rootA, 'the edited copy restored');
    await core.deleteNamespacedConfigMap({ namespace: 'late', name: BUNDLE_CONFIGMAP });
    await eventually(async () => (await bundleIn('late')) === rootA, 'the deleted copy restored');
  } finally {
    await publisher.stop();
  }
});

test('the agent hot-reloads the bundle from its ConfigMap and refuses a malformed one, keeping the roots it has', async () => {
  await core.createNamespace({ body: { metadata: { name: 'agent-ns' } } });
  await core.createNamespacedConfigMap({ namespace: 'agent-ns', body: { metadata: { name: BUNDLE_CONFIGMAP }, data: { [BUNDLE_KEY]: rootA } } });
  const bundle = new TrustBundle();
  const seen: number[] = [];
  bundle.onChange((roots) => seen.push(roots.length));
  const logged: string[] = [];
  const watch = watchTrustBundle((await api.agentClient()).watch, 'agent-ns', bundle, (msg) => logged.push(msg));
  try {
    await eventually(() => bundle.pems()[0]?.trim() === rootA.trim(), 'the first bundle');
    // Rotation of the root: both roots trusted during the overlap, then only the new one.
    await core.replaceNamespacedConfigMap({ namespace: 'agent-ns', name: BUNDLE_CONFIGMAP, body: { metadata: { name: BUNDLE_CONFIGMAP }, data: { [BUNDLE_KEY]: rootA + rootB } } });
    await eventually(() => bundle.pems().length === 2, 'both roots');
    await core.replaceNamespacedConfigMap({ namespace: 'agent-ns', name: BUNDLE_CONFIGMAP, body: { metadata: { name: BUNDLE_CONFIGMAP }, data: { [BUNDLE_KEY]: 'not a certificate' } } });
    // Settled: the watcher has seen the malformed update and refused it; only then is "kept" meaningful.
    await eventually(() => logged.includes('trust bundle refused; keeping the previous roots'), 'the malformed update refused');
    assert.equal(bundle.pems().length, 2, 'a malformed update keeps the previous roots');
    await core.replaceNamespacedConfigMap({ namespace: 'agent-ns', name: BUNDLE_CONFIGMAP, body: { metadata: { name: BUNDLE_CONFIGMAP }, data: { [BUNDLE_KEY]: rootB } } });
    await eventually(() => bundle.pems().length === 1 && bundle.pems()[0]!.trim() === rootB.trim(), 'only the new root');
    assert.deepEqual(seen, [1, 2, 1]);
  } finally {
    await watch.stop();
  }
});

test('a bundle with no certificate is refused with ERR_PEM', () => {
  assert.throws(() => new TrustBundle('garbage'), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_PEM');
  const b = new TrustBundle(rootA);
  assert.throws(() => b.update('', 'configmap x'), /configmap x holds no PEM certificate/);
  assert.equal(b.pems().length, 1);
});

test('renewal at half-life ±5 %, measured from receipt; retries back off, capped by the remaining life', () => {
  const received = 1_000_000;
  const notAfter = received + 20_000;
  assert.equal(renewalTime(received, notAfter, () => 0.5), received + 10_000);
  assert.equal(renewalTime(received, notAfter, () => 0), received + 9_000);
  assert.equal(renewalTime(received, notAfter, () => 1), received + 11_000);
  const mid = () => 0.5;
  assert.equal(retryDelay(0, 0, undefined, mid), 500);
  assert.equal(retryDelay(3, 0, undefined, mid), 4000);
  assert.equal(retryDelay(20, 0, undefined, mid), 30_000);
  assert.equal(retryDelay(20, 0, 8000, mid), 2000, 'a quarter of the remaining 8 s');
  assert.equal(retryDelay(20, 0, 100, mid), 250, 'never a busy loop');
});
