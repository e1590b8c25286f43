import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { eventually } from '../helpers/apiserver.js';
import { sample } from '../helpers/prometheus.js';
import { rootTest } from '../helpers/root.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { httpFromPod } from '../helpers/sim-http.js';
import { netnsOf, readyAndEnrolled } from '../helpers/sim-pods.js';
import { warren } from '../helpers/warren-cli.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const deployment = (version: string): string => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-${version}, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web, version: ${version}}}
  template:
    metadata: {labels: {app: web, version: ${version}}}
    spec:
      nodeName: node-2
      containers:
      - name: web
        image: hashicorp/http-echo
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web-${version}, namespace: shop}
spec:
  selector: {app: web, version: ${version}}
  ports: [{port: 8080, targetPort: 8080}]
`;

// Two versions of one app (the simulator's http-echo answers with its pod's name), a Service over both and one per version.
const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec:
  nodeName: node-1
  serviceAccountName: client
  containers: [{name: c, image: sleep}]
---
${deployment('v1')}
---
${deployment('v2')}
`;

interface Answer {
  status: number;
  /** the pod that served it (http-echo's JSON), when it did */
  pod?: string;
  /** the address the app saw the request come from */
  clientIp?: string;
  /** the request headers as the app received them */
  headers?: Record<string, string>;
  body: string;
}

interface Conditioned {
  status?: { parents?: Array<{ controllerName?: string; conditions?: Array<{ type: string; status: string; reason: string }> }>; conditions?: Array<{ type: string; status: string; reason: string }> };
}

/** One HTTP/1.1 request from inside a pod's netns, read as http-echo's JSON when it is. */
async function call(netns: string, host: string, port: number, method: string, headers: Record<string, string> = {}): Promise<Answer> {
  const { status, body } = await httpFromPod(netns, host, port, { method, headers });
  let echo: { pod?: string; client?: { ip?: string }; headers?: Record<string, string> } = {};
  try {
    echo = JSON.parse(body) as typeof echo;
  } catch {
    echo = {};
  }
  return { status, body, ...(echo.pod === undefined ? {} : { pod: echo.pod, clientIp: echo.client?.ip ?? '', headers: echo.headers ?? {} }) };
}

// On --dataplane native the waypoint pod's agent does not hand streams to the waypoint yet
// (docs/architecture.md §2: refused, fail closed), so only the node data path runs this.
for (const dataplane of testDataplanes().filter((d) => d === 'node'))
rootTest(`waypoint L7 end to end (--dataplane ${dataplane}): the real warren waypoint-proxy in its pod counts, routes by header, authorizes by method, and fails closed when gone`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-waypoint-l7-`);
  try {
    const kc = await simClusterWith(stateDir, 16551, MANIFEST, dataplane);
    const kubeconfig = `${stateDir}/kubeconfig`;
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: 'shop' })).items;
    await eventually(async () => (await pods()).length === 3 && (await pods()).every(readyAndEnrolled), 'client, web-v1 and web-v2 ready and enrolled', 90_000);
    const clientNs = netnsOf((await pods()).find((p) => p.metadata!.name === 'client')!);
    const vip = (await core.readNamespacedService({ namespace: 'shop', name: 'web' })).spec!.clusterIP!;
    const get = (headers: Record<string, string> = {}): Promise<Answer> => call(clientNs, vip, 8080, 'GET', headers);
    const waypointPod = async (): Promise<V1Pod | undefined> => (await pods()).find((p) => p.metadata?.labels?.['gateway.networking.k8s.io/gateway-name'] === 'waypoint' && readyAndEnrolled(p));
    /** istio_requests_total{reporter="waypoint"} for the web Service with this response code, read from the waypoint's admin port inside its pod */
    const counted = async (code: string): Promise<number> => {
      const pod = await waypointPod();
      if (pod === undefined) return 0;
      const metrics = await httpGetInNetns({ netns: netnsOf(pod), host: '127.0.0.1', port: 15020, path: '/metrics' });
      return sample(metrics.body.toString(), 'istio_requests_total', { reporter: 'waypoint', destination_service_name: 'web', response_code: code }) ?? 0;
    };

    await t.test('warren waypoint apply runs the real warren waypoint-proxy: Programmed once its pod is ready', async () => {
      const applied = await warren('waypoint', 'apply', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.equal(applied.exitCode, 0, applied.stderr);
      await eventually(async () => (await waypointPod()) !== undefined, 'the waypoint pod ready', 60_000);
      await eventually(async () => /Programmed\s+True/.test((await warren('waypoint', 'status', '-n', 'shop', '--kubeconfig', kubeconfig)).stdout), 'warren waypoint status: Programmed True', 30_000);
    });

    await t.test('a request to the labelled Service goes through the waypoint: istio_requests_total{reporter="waypoint"} counts it', async () => {
      assert.equal((await get()).status, 200, 'direct before the label');
      assert.equal(await counted('200'), 0, 'the waypoint saw nothing yet');
      await core.patchNamespacedService({ namespace: 'shop', name: 'web', body: { metadata: { labels: { 'warren.io/use-waypoint': 'waypoint' } } } }, mergePatch);
      await eventually(async () => (await get().catch(() => undefined))?.status === 200 && (await counted('200')) > 0, 'a request counted by the waypoint', 30_000);
      const before = await counted('200');
      const answer = await get();
      assert.equal(answer.status, 200);
      assert.match(answer.pod ?? '', /^web-v[12]-/);
      assert.equal(await counted('200'), before + 1, 'each request counted once');
      // The waypoint's own upstream connection, tunneled by its agent: the app sees the waypoint pod's address, and the headers the waypoint adds.
      assert.equal(answer.clientIp, (await waypointPod())?.status?.podIP, 'the app is called by the waypoint');
      assert.match(answer.headers?.['x-request-id'] ?? '', /./, 'x-request-id added by the waypoint');
      assert.match(answer.headers?.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, 'traceparent started by the waypoint');
    });

    await t.test('an HTTPRoute with a header match sends x-version: v2 to web-v2, the rest to web-v1', async () => {
      await custom.createNamespacedCustomObject({
        group: 'gateway.networking.k8s.io',
        version: 'v1',
        plural: 'httproutes',
        namespace: 'shop',
        body: {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name: 'web-by-version', namespace: 'shop' },
          spec: {
            parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 8080 }],
            rules: [
              { matches: [{ headers: [{ type: 'Exact', name: 'x-version', value: 'v2' }] }], backendRefs: [{ name: 'web-v2', port: 8080 }] },
              { backendRefs: [{ name: 'web-v1', port: 8080 }] },
            ],
          },
        },
      });
      await eventually(async () => {
        const [v2, v1] = [await get({ 'x-version': 'v2' }).catch(() => undefined), await get().catch(() => undefined)];
        return /^web-v2-/.test(v2?.pod ?? '') && /^web-v1-/.test(v1?.pod ?? '');
      }, 'the route applied', 30_000);
      for (let i = 0; i < 4; i++) {
        assert.match((await get({ 'x-version': 'v2' })).pod ?? '', /^web-v2-/);
        assert.match((await get()).pod ?? '', /^web-v1-/);
        assert.match((await get({ 'x-version': 'v3' })).pod ?? '', /^web-v1-/);
      }
      await eventually(async () => {
        const route = (await custom.getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: 'shop', name: 'web-by-version' })) as Conditioned;
        const parent = route.status?.parents?.find((p) => p.controllerName === 'warren.io/waypoint');
        return parent?.conditions?.some((c) => c.type === 'Accepted' && c.status === 'True') === true && parent.conditions.some((c) => c.type === 'ResolvedRefs' && c.status === 'True');
      }, 'the waypoint wrote Accepted and ResolvedRefs True on the route', 20_000);
    });

    await t.test('an L7 AuthorizationPolicy targeting the Service: GET allowed, DELETE 403 from the waypoint', async () => {
      await custom.createNamespacedCustomObject({
        group: 'security.warren.io',
        version: 'v1',
        plural: 'authorizationpolicies',
        namespace: 'shop',
        body: {
          apiVersion: 'security.warren.io/v1',
          kind: 'AuthorizationPolicy',
          metadata: { name: 'web-read-only', namespace: 'shop' },
          spec: { targetRefs: [{ group: '', kind: 'Service', name: 'web' }], action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }], to: [{ operation: { methods: ['GET', 'HEAD'] } }] }] },
        },
      });
      await eventually(async () => (await call(clientNs, vip, 8080, 'DELETE').catch(() => undefined))?.status === 403, 'DELETE denied', 30_000);
      const denied = await call(clientNs, vip, 8080, 'DELETE');
      assert.equal(denied.pod, undefined, 'the denial comes from the waypoint, not the app');
      assert.equal((await get()).status, 200);
      assert.ok((await counted('403')) >= 2, 'the waypoint counted its 403s');
      await eventually(async () => {
        const policy = (await custom.getNamespacedCustomObject({ group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies', namespace: 'shop', name: 'web-read-only' })) as Conditioned;
        return policy.status?.conditions?.some((c) => c.type === 'Accepted' && c.status === 'True') === true;
      }, 'the waypoint wrote Accepted True on the policy', 20_000);
    });

    await t.test('the waypoint scaled to 0: the client gets an error, never a bypass to the app', async () => {
      await apps.patchNamespacedDeployment({ namespace: 'shop', name: 'waypoint', body: { spec: { replicas: 0 } } }, mergePatch);
      await eventually(async () => (await get().catch(() => undefined)) === undefined, 'requests fail while no waypoint pod is ready', 30_000);
      for (let i = 0; i < 5; i++) {
        const outcome = await get().then((a) => `answered ${a.status} by ${a.pod ?? 'no pod'}`, (err: Error) => `error: ${err.message}`);
        assert.match(outcome, /^error: /, 'no answer from the app around the waypoint');
        const deleted = await call(clientNs, vip, 8080, 'DELETE').then((a) => `answered ${a.status}`, () => 'error');
        assert.equal(deleted, 'error', 'a DELETE does not reach the app either');
      }
    });

    await t.test('the waypoint back: routes and policy apply again, and its log has no warning or error', async () => {
      await apps.patchNamespacedDeployment({ namespace: 'shop', name: 'waypoint', body: { spec: { replicas: 1 } } }, mergePatch);
      await eventually(async () => /^web-v2-/.test((await get({ 'x-version': 'v2' }).catch(() => undefined))?.pod ?? ''), 'routed through the new waypoint pod', 60_000);
      assert.equal((await call(clientNs, vip, 8080, 'DELETE')).status, 403);
      const pod = (await waypointPod())!;
      const log = await readFile(`${stateDir}/pods/shop/${pod.metadata!.name!}/waypoint.log`, 'utf8');
      const bad = log.split('\n').filter((l) => /"level":(40|50|60)/.test(l));
      assert.deepEqual(bad, [], 'warnings or errors in the waypoint log');
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
