import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ApiextensionsV1Api, CoreV1Api, type KubernetesObject, type V1ConfigMap } from '@kubernetes/client-node';
import { z } from 'zod';
import { KubeApi } from '../../src/k8s/lean/api-client.js';
import { startLeanInformer } from '../../src/k8s/lean/informer.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { eventually, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

type Logged = { msg: string; fields: Record<string, unknown> };

/** The agent's informer on ConfigMaps of namespace `watched`, against the embedded API server (real HTTP watch streams). */
async function configMapInformer(api: TestApiServer, options: { parse?: (o: unknown) => V1ConfigMap } = {}) {
  const { api: client } = await api.agentClient();
  const logged: Logged[] = [];
  const informer = startLeanInformer<V1ConfigMap>({
    api: client,
    path: '/api/v1/namespaces/watched/configmaps',
    onChange: () => {},
    restartDelayMs: 50,
    log: (msg, fields) => logged.push({ msg, fields }),
    ...options,
  });
  return { informer, logged, names: () => informer.list().map((c) => c.metadata?.name).sort() };
}

async function withNamespaces(): Promise<{ api: TestApiServer; core: CoreV1Api }> {
  const api = await startTestApiServer();
  const core = api.kc.makeApiClient(CoreV1Api);
  for (const name of ['watched', 'other']) await core.createNamespace({ body: { metadata: { name } } });
  return { api, core };
}

const cm = (name: string, data: Record<string, string> = {}) => ({ metadata: { name }, data });

test('lean informer: synced waits for a list that succeeded, and failed lists back off doubling', async () => {
  const api = await startTestApiServer();
  const { api: client } = await api.agentClient();
  const logged: Logged[] = [];
  const informer = startLeanInformer<KubernetesObject>({
    api: client,
    path: '/apis/security.warren.io/v1/authorizationpolicies',
    onChange: () => {},
    restartDelayMs: 20,
    log: (msg, fields) => logged.push({ msg, fields }),
  });
  let synced = false;
  void informer.synced.then(() => (synced = true));
  try {
    const failures = () => logged.filter((l) => l.msg === 'informer stopped, restarting');
    await eventually(() => failures().length >= 4, 'four failed lists (the CRD is missing)');
    assert.equal(synced, false, 'a failed list is not a sync');
    assert.deepEqual(failures().slice(0, 4).map((l) => l.fields.retryInMs), [20, 40, 80, 160], 'the wait doubles');
    const ext = api.kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: typedCrds().find((c) => c.spec.names.plural === 'authorizationpolicies')! });
    await eventually(() => synced, 'synced once the list succeeds', 15_000);
    assert.deepEqual(informer.list(), []);
  } finally {
    await informer.stop();
    await api.stop();
  }
});

test('lean informer: a watch resumed after the API server restarts from before its restart gets 410, and the informer lists again', async () => {
  const { api, core } = await withNamespaces();
  await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('a') });
  const { informer, logged, names } = await configMapInformer(api);
  try {
    await informer.synced;
    assert.deepEqual(names(), ['a']);
    // Changes this watch does not see move the server's version past the informer's (no bookmarks at the default 60 s).
    for (let i = 0; i < 3; i++) await core.createNamespacedConfigMap({ namespace: 'other', body: cm(`o${i}`) });
    await api.restart(); // history starts empty: resuming from the informer's version is 410 Gone
    await eventually(() => logged.some((l) => l.msg === 'watch expired, listing again'), 'the 410 seen as expiry');
    await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('b') });
    await eventually(() => names().join() === 'a,b', 'the watch going again after the new list');
  } finally {
    await informer.stop();
    await api.stop();
  }
});

test('lean informer: bookmarks move the resume version, so a restart after them needs no new list', async () => {
  const api = await startTestApiServer({ bookmarkIntervalMs: 100 });
  const core = api.kc.makeApiClient(CoreV1Api);
  for (const name of ['watched', 'other']) await core.createNamespace({ body: { metadata: { name } } });
  const { informer, logged, names } = await configMapInformer(api);
  try {
    await informer.synced;
    for (let i = 0; i < 3; i++) await core.createNamespacedConfigMap({ namespace: 'other', body: cm(`o${i}`) });
    await new Promise((r) => setTimeout(r, 600)); // several bookmarks carry the server's newest version
    await api.restart();
    await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('after') });
    await eventually(() => names().join() === 'after', 'the resumed watch');
    assert.equal(logged.filter((l) => l.msg === 'watch expired, listing again').length, 0, 'resumed from the bookmark: no 410, no new list');
  } finally {
    await informer.stop();
    await api.stop();
  }
});

test('lean informer: a watch event the parser refuses is dropped with ERR_K8S_WATCH_EVENT naming the field; the stream goes on', async () => {
  const { api, core } = await withNamespaces();
  const parse = (o: unknown): V1ConfigMap => z.looseObject({ metadata: z.looseObject({ name: z.string() }), data: z.object({ n: z.string().regex(/^\d+$/) }) }).parse(o) as V1ConfigMap;
  const { informer, logged, names } = await configMapInformer(api, { parse });
  try {
    await informer.synced;
    await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('one', { n: '1' }) });
    await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('bad', { n: 'x' }) });
    await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('two', { n: '2' }) });
    await eventually(() => names().join() === 'one,two', 'the good objects, after the bad one');
    const drops = logged.filter((l) => l.msg === 'watch event dropped');
    assert.equal(drops.length, 1);
    assert.equal(drops[0]!.fields.code, 'ERR_K8S_WATCH_EVENT');
    assert.match(String(drops[0]!.fields.err), /data\.n/);
    assert.equal(logged.filter((l) => l.msg === 'informer stopped, restarting').length, 0, 'the watch was not cut for it');
  } finally {
    await informer.stop();
    await api.stop();
  }
});

test('lean informer: deletes and updates reach the cache; stop ends the watch', async () => {
  const { api, core } = await withNamespaces();
  await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('a', { v: '1' }) });
  const { informer, names } = await configMapInformer(api);
  try {
    await informer.synced;
    await core.replaceNamespacedConfigMap({ namespace: 'watched', name: 'a', body: cm('a', { v: '2' }) });
    await eventually(() => informer.list()[0]?.data?.v === '2', 'the update');
    await core.deleteNamespacedConfigMap({ namespace: 'watched', name: 'a' });
    await eventually(() => names().length === 0, 'the delete');
    await informer.stop();
    await core.createNamespacedConfigMap({ namespace: 'watched', body: cm('late') });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(names(), [], 'a stopped informer follows nothing');
  } finally {
    await informer.stop();
    await api.stop();
  }
});

test('lean informer: a character split between two chunks of the watch stream arrives whole', async () => {
  // The embedded API server writes each event in one piece; a real one (or a proxy) may cut anywhere.
  const event = Buffer.from(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'café', resourceVersion: '2' }, data: { motto: 'naïve — ça va' } } }) + '\n');
  const cut = event.indexOf(Buffer.from('é')) + 1;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (!req.url!.includes('watch=true')) return void res.end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [] }));
    res.write(event.subarray(0, cut));
    setTimeout(() => res.write(event.subarray(cut)), 50);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const api = new KubeApi({ server: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), insecureSkipTlsVerify: false, token: () => undefined });
  const informer = startLeanInformer<V1ConfigMap>({ api, path: '/api/v1/namespaces/watched/configmaps', onChange: () => {}, log: () => {} });
  try {
    await eventually(() => informer.list().length === 1, 'the event applied');
    assert.equal(informer.list()[0]!.metadata!.name, 'café');
    assert.deepEqual(informer.list()[0]!.data, { motto: 'naïve — ça va' });
  } finally {
    await informer.stop();
    api.close();
    server.closeAllConnections();
    server.close();
  }
});
