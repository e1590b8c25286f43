import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { exec, kubectlOrSkip } from '../../helpers/kubectl.js';
import { writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { AuthenticationV1Api, CoreV1Api, PatchStrategy, makeInformer, setHeaderOptions, type V1ConfigMap } from '@kubernetes/client-node';
import { eventually, startTestApiServer, type TestApiServer } from '../../helpers/apiserver.js';

let api: TestApiServer;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
before(async () => {
  api = await startTestApiServer({ bookmarkIntervalMs: 200 });
});
after(async () => {
  await api.stop();
});

async function raw(path: string, init: { method?: string; body?: string; token?: string | null; contentType?: string } = {}): Promise<{ status: number; body: any; text: string; warning?: string }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'Content-Type': init.contentType ?? 'application/json' };
    if (init.token !== null) headers.Authorization = `Bearer ${init.token ?? api.server.adminToken}`;
    const req = request(`${api.url}${path}`, { method: init.method ?? 'GET', ca: api.server.caCertPem, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body, text, ...(res.headers.warning === undefined ? {} : { warning: String(res.headers.warning) }) });
      });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

async function rawBytes(path: string, body: Buffer): Promise<{ status: number; body: any; text: string }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const headers = { 'Content-Type': 'application/vnd.kubernetes.protobuf', Accept: 'application/vnd.kubernetes.protobuf, application/json', Authorization: `Bearer ${api.server.adminToken}` };
    const req = request(`${api.url}${path}`, { method: 'POST', ca: api.server.caCertPem, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('requests without a valid bearer token are 401 Status objects', async () => {
  const none = await raw('/api/v1/namespaces', { token: null });
  assert.equal(none.status, 401);
  assert.equal(none.body.kind, 'Status');
  assert.equal((await raw('/api/v1/namespaces', { token: 'forged.token.value' })).status, 401);
});

test('malformed requests are 400/404/415 with a Status naming the problem', async () => {
  const bad = await raw('/api/v1/namespaces/default/configmaps', { method: 'POST', body: '{"metadata": ' });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /not valid JSON/);
  assert.equal((await raw('/api/v1/namespaces/default/frobs')).status, 404);
  // kubectl create job: a group this server does not serve is named, not mistaken for a namespace's subresource.
  assert.match((await raw('/apis/batch/v1/namespaces/default/jobs', { method: 'POST', body: '{}' })).body.message, /jobs\.batch\/v1/);
  assert.equal((await raw('/api/v1/namespaces/default/configmaps/missing')).body.reason, 'NotFound');
  const yaml = await raw('/api/v1/namespaces/default/configmaps', { method: 'POST', body: 'x: 1', contentType: 'application/yaml' });
  assert.equal(yaml.status, 415);
  const rv = await raw('/api/v1/configmaps?watch=1&resourceVersion=abc');
  assert.equal(rv.status, 400);
});

test('fieldValidation: duplicate fields are a 400 naming them under Strict, a Warning header under Warn', async () => {
  const body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}';
  const strict = await raw('/api/v1/namespaces/default/configmaps?fieldValidation=Strict', { method: 'POST', body });
  assert.equal(strict.status, 400);
  assert.match(strict.body.message, /strict decoding error: duplicate field "data.a"/);
  const warn = await raw('/api/v1/namespaces/default/configmaps?fieldValidation=Warn&dryRun=All', { method: 'POST', body });
  assert.equal(warn.status, 201);
  assert.equal(warn.warning, '299 - "duplicate field \\"data.a\\""');
  assert.equal(warn.body.data.a, '2', 'the last one wins, as in Go');
  assert.equal((await raw('/api/v1/namespaces/default/configmaps?fieldValidation=Loose', { method: 'POST', body })).status, 400);
});

/** A protobuf field: key (number << 3 | wire type 2), length, bytes. */
const pbField = (n: number, bytes: Buffer): Buffer => Buffer.concat([Buffer.from([(n << 3) | 2, bytes.length]), bytes]);
const envelope = (apiVersion: string, kind: string, raw: Buffer): Buffer =>
  Buffer.concat([Buffer.from('k8s\0', 'latin1'), pbField(1, Buffer.concat([pbField(1, Buffer.from(apiVersion)), pbField(2, Buffer.from(kind))])), pbField(2, raw)]);

test('protobuf bodies: corrupt ones are a 400 naming the problem and the server keeps serving; kinds not decoded are a 415 naming the kind', async () => {
  const post = (body: Buffer, path = '/api/v1/namespaces/default/configmaps') => rawBytes(path, body);
  const noMagic = await post(Buffer.from('not protobuf'));
  assert.equal(noMagic.status, 400);
  assert.match(noMagic.body.message, /protobuf body is corrupt: .*k8s\\x00/);
  // ConfigMap.metadata (field 1) claims 100 bytes and has 3.
  const truncated = await post(envelope('v1', 'ConfigMap', Buffer.from([0x0a, 100, 1, 2, 3])));
  assert.equal(truncated.status, 400);
  assert.match(truncated.body.message, /protobuf body is corrupt: ConfigMap \(v1\)/);
  const badEnvelope = await post(Buffer.concat([Buffer.from('k8s\0', 'latin1'), Buffer.from([0x0a, 0xff])]));
  assert.equal(badEnvelope.status, 400);
  assert.match(badEnvelope.body.message, /runtime.Unknown envelope/);
  const job = await post(envelope('batch/v1', 'Job', Buffer.alloc(0)));
  assert.equal(job.status, 415);
  assert.match(job.body.message, /does not decode Job \(batch\/v1\) from protobuf/);
  // A good one after all that: ConfigMap{metadata{name "pb"}, data{"k": "v"}} (data is field 2, a map entry of key 1, value 2).
  const good = await post(envelope('v1', 'ConfigMap', Buffer.concat([pbField(1, pbField(1, Buffer.from('pb'))), pbField(2, Buffer.concat([pbField(1, Buffer.from('k')), pbField(2, Buffer.from('v'))]))])));
  assert.equal(good.status, 201, good.text);
  assert.deepEqual(good.body.data, { k: 'v' });
  assert.equal(good.body.metadata.name, 'pb');
  assert.equal((await raw('/api/v1/namespaces/default/configmaps/pb', { method: 'DELETE' })).status, 200);
});

test('a client-node informer sees add, update, delete in order, and relists after an API server restart', async () => {
  const core = api.kc.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1ConfigMap>(api.kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  const seen: string[] = [];
  informer.on('add', (o) => seen.push(`add:${o.metadata?.name}:${o.data?.v}`));
  informer.on('update', (o) => seen.push(`update:${o.metadata?.name}:${o.data?.v}`));
  informer.on('delete', (o) => seen.push(`delete:${o.metadata?.name}`));
  let stopped = false;
  // client-node's documented pattern: an informer stops on a connection error and is restarted by its owner.
  informer.on('error', () => {
    if (!stopped) setTimeout(() => void informer.start().catch(() => undefined), 200);
  });
  await informer.start();
  try {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'a' }, data: { v: '1' } } });
    await core.patchNamespacedConfigMap({ namespace: 'default', name: 'a', body: { data: { v: '2' } } }, mergePatch);
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'a' });
    await eventually(() => seen.length >= 3, 'three informer events');
    assert.deepEqual(seen, ['add:a:1', 'update:a:2', 'delete:a']);

    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'b' }, data: { v: '1' } } });
    await eventually(() => seen.length >= 4, 'the add of b');
    await api.restart();
    // Written after the restart: the informer must reconnect (its old version may be gone) and see it.
    await core.patchNamespacedConfigMap({ namespace: 'default', name: 'b', body: { data: { v: '2' } } }, mergePatch);
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'c' }, data: { v: '1' } } });
    await eventually(() => informer.list('default').length === 2 && informer.get('b', 'default')?.data?.v === '2', 'the informer to catch up after the restart', 15_000);
    assert.deepEqual(seen.slice(3), ['add:b:1', 'update:b:2', 'add:c:1']);
    const persisted = await core.readNamespacedConfigMap({ namespace: 'default', name: 'b' });
    assert.equal(persisted.data?.v, '2', 'state survived the restart');
  } finally {
    stopped = true;
    await informer.stop();
    await core.deleteCollectionNamespacedConfigMap({ namespace: 'default' });
  }
});

test('a watch resumed from a version older than the history window ends with a 410 ERROR event', async () => {
  const res = await raw('/api/v1/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1');
  assert.equal(res.status, 200);
  const first = JSON.parse(res.text.split('\n')[0]!);
  assert.equal(first.type, 'ERROR');
  assert.equal(first.object.code, 410);
});

test('watches send bookmarks and stop at timeoutSeconds', async () => {
  const started = Date.now();
  const res = await raw('/api/v1/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=1');
  const events = res.text.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(events.some((e) => e.type === 'BOOKMARK' && /^\d+$/.test(e.object.metadata.resourceVersion)), res.text);
  assert.ok(Date.now() - started < 5000);
});

test('TokenRequest issues pod-bound tokens that TokenReview accepts with pod and node in extra', async () => {
  const core = api.kc.makeApiClient(CoreV1Api);
  const auth = api.kc.makeApiClient(AuthenticationV1Api);
  await core.createNode({ body: { metadata: { name: 'node-1' } } });
  await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'bookinfo' } } });
  const pod = await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'p' }, spec: { nodeName: 'node-1', serviceAccountName: 'bookinfo', containers: [{ name: 'c', image: 'sleep' }] } } });
  try {
    const tr = await core.createNamespacedServiceAccountToken({
      namespace: 'default',
      name: 'bookinfo',
      body: { spec: { audiences: ['istio-ca'], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', name: 'p', uid: pod.metadata!.uid! } } },
    });
    const token = tr.status!.token!;
    const review = await auth.createTokenReview({ body: { spec: { token, audiences: ['istio-ca'] } } });
    assert.equal(review.status?.authenticated, true);
    assert.equal(review.status?.user?.username, 'system:serviceaccount:default:bookinfo');
    assert.deepEqual(review.status?.user?.extra?.['authentication.kubernetes.io/pod-name'], ['p']);
    assert.deepEqual(review.status?.user?.extra?.['authentication.kubernetes.io/node-name'], ['node-1']);
    const wrongAudience = await auth.createTokenReview({ body: { spec: { token, audiences: ['other'] } } });
    assert.equal(wrongAudience.status?.authenticated, false);
    await core.deleteNamespacedPod({ namespace: 'default', name: 'p' });
    const afterDelete = await auth.createTokenReview({ body: { spec: { token, audiences: ['istio-ca'] } } });
    assert.equal(afterDelete.status?.authenticated, false, 'a token bound to a deleted pod is no longer valid');
  } finally {
    await core.deleteNamespacedPod({ namespace: 'default', name: 'p' }).catch(() => undefined);
    await core.deleteNamespacedServiceAccount({ namespace: 'default', name: 'bookinfo' });
    await core.deleteNode({ name: 'node-1' });
  }
});


test('kubectl works unchanged: apply, get -o json, label, annotate, get -w, delete', async (t) => {
  const kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const kubeconfigPath = `${api.dir}/kubeconfig`;
  await writeFile(kubeconfigPath, api.kubeconfigText);
  const k = async (...args: string[]): Promise<string> => (await exec(kubectl, ['--kubeconfig', kubeconfigPath, ...args])).stdout;
  const manifest = `${api.dir}/m.yaml`;
  const doc = (replicas: number): string =>
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: ${replicas}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - {name: web, image: http-echo}\n`;
  await writeFile(manifest, doc(1));
  assert.match(await k('apply', '-f', manifest), /deployment.apps\/web created/);
  await writeFile(manifest, doc(3));
  assert.match(await k('apply', '-f', manifest), /deployment.apps\/web configured/);
  assert.equal(JSON.parse(await k('-n', 'shop', 'get', 'deploy', 'web', '-o', 'json')).spec.replicas, 3);
  assert.match(await k('-n', 'shop', 'get', 'deploy', 'web', '-o', 'yaml'), /replicas: 3/);
  await k('label', 'ns', 'shop', 'istio.io/dataplane-mode=ambient');
  await k('-n', 'shop', 'annotate', 'deploy', 'web', 'note=hi');
  assert.equal(JSON.parse(await k('get', 'ns', 'shop', '-o', 'json')).metadata.labels['istio.io/dataplane-mode'], 'ambient');
  assert.match(await k('get', 'ns', '-l', 'istio.io/dataplane-mode=ambient'), /^shop\s+Active/m);
  const watch = exec(kubectl, ['--kubeconfig', kubeconfigPath, '-n', 'shop', 'get', 'deploy', '-w', '--request-timeout=3s'], { timeout: 8000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  await sleep(1000);
  await k('-n', 'shop', 'label', 'deploy', 'web', 'watched=yes');
  const watched = (await watch).stdout;
  assert.match(watched, /^NAME\s+READY/m);
  assert.ok(watched.split('\n').filter((l) => l.startsWith('web')).length >= 2, watched);
  assert.match(await k('delete', 'ns', 'shop'), /namespace "shop" deleted/);
  assert.match(await k('get', 'deploy', '-A', '-o', 'name'), /^$/);
});
