import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { eventually } from '../helpers/apiserver.js';
import { sample } from '../helpers/prometheus.js';
import { rootTest } from '../helpers/root.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { httpFromPod, type PodAnswer } from '../helpers/sim-http.js';
import { netnsOf, readyAndEnrolled } from '../helpers/sim-pods.js';
import { warren } from '../helpers/warren-cli.js';

/**
 * Istio's resilience tasks through the real waypoint in the simulator
 * (docs/architecture.md §15): fault injection (delay for one user, abort at
 * 50 %), circuit breaking, outlier detection, and a local rate limit; client
 * pod → its agent → HBONE → the waypoint pod → the app pods.
 */
const app = (name: string, labels: string, replicas: number, env = ''): string => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: shop}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {${labels}}}
  template:
    metadata: {labels: {${labels}}}
    spec:
      nodeName: node-2
      containers:
      - name: app
        image: kennethreitz/httpbin
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
        ${env}
`;

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {warren.io/dataplane-mode: ambient, warren.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec:
  nodeName: node-1
  serviceAccountName: client
  containers: [{name: c, image: sleep}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{port: 8000, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{port: 8000, targetPort: 8080}]
---
${app('ratings', 'app: ratings', 1)}
---
${app('reviews-ok', 'app: reviews, health: ok', 2)}
---
${app('reviews-bad', 'app: reviews, health: bad', 1, 'env: [{name: ECHO_STATUS, value: "500"}]')}
`;

type Answer = PodAnswer;

for (const dataplane of testDataplanes())
rootTest(`waypoint resilience end to end (--dataplane ${dataplane}): Istio's fault injection, circuit breaking, outlier detection and a local rate limit in the real waypoint`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-waypoint-resilience-`);
  try {
    const kc = await simClusterWith(stateDir, 16571, MANIFEST, dataplane);
    const kubeconfig = `${stateDir}/kubeconfig`;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const create = (plural: string, kind: string, name: string, spec: object) => custom.createNamespacedCustomObject({ group: 'networking.warren.io', version: 'v1', namespace: 'shop', plural, body: { apiVersion: 'networking.warren.io/v1', kind, metadata: { name, namespace: 'shop' }, spec } });
    const remove = (plural: string, name: string) => custom.deleteNamespacedCustomObject({ group: 'networking.warren.io', version: 'v1', namespace: 'shop', plural, name });
    const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: 'shop' })).items;
    const waypointPod = async (): Promise<V1Pod | undefined> => (await pods()).find((p) => p.metadata?.labels?.['gateway.networking.k8s.io/gateway-name'] === 'waypoint' && readyAndEnrolled(p));
    const counted = async (service: string, flags: string): Promise<number> => {
      const pod = await waypointPod();
      if (pod === undefined) return 0;
      const metrics = await httpGetInNetns({ netns: netnsOf(pod), host: '127.0.0.1', port: 15020, path: '/metrics' });
      return sample(metrics.body.toString(), 'istio_requests_total', { reporter: 'waypoint', destination_service_name: service, response_flags: flags }) ?? 0;
    };
    let clientNs = '';
    const vip = new Map<string, string>();
    const get = (service: string, path = '/', headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> => httpFromPod(clientNs, vip.get(service)!, 8000, { path, headers, timeoutMs });

    await t.test('the waypoint runs and serves the namespace', async () => {
      assert.equal((await warren('waypoint', 'apply', '-n', 'shop', '--kubeconfig', kubeconfig)).exitCode, 0);
      await eventually(async () => (await pods()).length === 6 && (await pods()).every(readyAndEnrolled), 'apps, client and waypoint ready and enrolled', 120_000);
      clientNs = netnsOf((await pods()).find((p) => p.metadata!.name === 'client')!);
      for (const s of ['ratings', 'reviews']) vip.set(s, (await core.readNamespacedService({ namespace: 'shop', name: s })).spec!.clusterIP!);
      await eventually(async () => (await get('ratings').catch(() => undefined))?.status === 200 && (await counted('ratings', '-')) > 0, 'ratings answered through the waypoint', 60_000);
    });

    await t.test('fault injection: a 7 s delay for end-user jason only; abort 500 at 50 % → 45–55 % of 1000', async () => {
      await create('virtualservices', 'VirtualService', 'ratings', {
        hosts: ['ratings'],
        http: [
          { match: [{ headers: { 'end-user': { exact: 'jason' } } }], fault: { delay: { percentage: { value: 100.0 }, fixedDelay: '7s' } }, route: [{ destination: { host: 'ratings' } }] },
          { fault: { abort: { percentage: { value: 50 }, httpStatus: 500 } }, route: [{ destination: { host: 'ratings' } }] },
        ],
      });
      await eventually(async () => (await get('ratings').catch(() => undefined))?.status === 500, 'the abort applied', 30_000);
      const t0 = performance.now();
      const jason = await get('ratings', '/', { 'end-user': 'jason' }, 15_000);
      const jasonMs = performance.now() - t0;
      assert.equal(jason.status, 200);
      assert.ok(jasonMs >= 7000, `jason waited ${jasonMs} ms`);
      // 1000 requests, 8 at a time: the others are never delayed
      const statuses: number[] = [];
      let started = 0;
      let slowest = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (started < 1000) {
            started++;
            const s = performance.now();
            statuses.push((await get('ratings')).status);
            slowest = Math.max(slowest, performance.now() - s);
          }
        }),
      );
      const aborted = statuses.filter((s) => s === 500).length;
      assert.equal(statuses.filter((s) => s === 200).length + aborted, 1000);
      assert.ok(aborted >= 450 && aborted <= 550, `aborted ${aborted} of 1000`);
      assert.ok(slowest < 7000, `no other request delayed (slowest ${slowest} ms)`);
      assert.ok((await counted('ratings', 'FI')) >= aborted, 'aborts counted with response_flags FI');
      await remove('virtualservices', 'ratings');
      // The next case starts once the waypoint dropped the abort: 20 answers in a row are 200
      // (1 in a million while a 50 % abort still applies).
      await eventually(async () => {
        for (let i = 0; i < 20; i++) if ((await get('ratings')).status !== 200) return false;
        return true;
      }, 'the VirtualService gone from the waypoint', 30_000);
    });

    await t.test('circuit breaking: maxConnections 1, http1MaxPendingRequests 1, 20 concurrent clients → some 503 UO, counted', async () => {
      await create('destinationrules', 'DestinationRule', 'ratings', { host: 'ratings', trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } } } });
      // The batch starts once the waypoint holds the rule: 3 overlapping requests → the third overflows.
      await eventually(async () => (await Promise.all(Array.from({ length: 3 }, () => get('ratings', '/delay/1', {}, 10_000).catch((): Answer => ({ status: 0, headers: {}, body: '' }))))).some((r) => r.status === 503), 'the DestinationRule in force at the waypoint', 30_000);
      // Each request holds the one connection 3 s, longer than the 20 clients take to arrive through their agent and HBONE.
      const replies = await Promise.all(Array.from({ length: 20 }, () => get('ratings', '/delay/3', {}, 10_000).catch((): Answer => ({ status: 0, headers: {}, body: '' }))));
      const ok = replies.filter((r) => r.status === 200).length;
      const overflow = replies.filter((r) => r.status === 503).length;
      assert.equal(ok + overflow, 20, `every request answered (${replies.map((r) => r.status).join(',')})`);
      assert.ok(ok >= 2 && overflow >= 10, `${ok} passed, ${overflow} overflowed`);
      assert.ok((await counted('ratings', 'UO')) >= overflow, 'overflows counted with response_flags UO');
      await remove('destinationrules', 'ratings');
    });

    await t.test('outlier detection: the endpoint answering 500 is ejected within the interval, then ≥ 99 % succeed; it is back after baseEjectionTime', async () => {
      await create('destinationrules', 'DestinationRule', 'reviews', { host: 'reviews', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '5s', maxEjectionPercent: 100 } } });
      const round = async (n: number): Promise<number> => {
        let ok = 0;
        for (let i = 0; i < n; i++) if ((await get('reviews')).status === 200) ok++;
        return ok;
      };
      await eventually(async () => (await round(6)) === 6, 'the failing endpoint ejected', 30_000);
      const ok = await round(200);
      assert.ok(ok >= 198, `${ok} of 200 succeeded after the ejection`);
      // back after baseEjectionTime (twice that if it failed again while the 200 ran)
      await eventually(async () => (await round(6)) < 6, 'the ejected endpoint gets traffic again', 30_000);
      await remove('destinationrules', 'reviews');
    });

    await t.test('rate limit: 10/s with burst 5 → 429 with x-ratelimit-* at the expected rate ±10 %', async () => {
      await create('backendtrafficpolicies', 'BackendTrafficPolicy', 'ratings', { targetRefs: [{ group: '', kind: 'Service', name: 'ratings' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 10, unit: 'Second', burst: 5 } }] } } });
      await eventually(async () => (await get('ratings').catch(() => undefined))?.status === 429, 'the limit applied', 30_000);
      await sleep(600); // the bucket full again (5 tokens at 10/s)
      // open loop, 40 requests/s for 3 s
      const start = performance.now();
      const sent: Array<Promise<number>> = [];
      for (let i = 0; i < 120; i++) {
        await sleep(Math.max(0, start + i * 25 - performance.now()));
        sent.push(get('ratings').then((r) => r.status, () => 0));
      }
      const seconds = (performance.now() - start) / 1000;
      const statuses = await Promise.all(sent);
      const passed = statuses.filter((s) => s === 200).length;
      const expected = 5 + 10 * seconds;
      assert.equal(statuses.filter((s) => s === 429).length + passed, 120, 'every request answered 200 or 429');
      assert.ok(Math.abs(passed - expected) <= expected * 0.1, `${passed} passed in ${seconds.toFixed(2)} s, expected ${expected.toFixed(1)} ±10 %`);
      assert.ok((await counted('ratings', 'RL')) >= 120 - passed, 'limited requests counted with response_flags RL');
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
