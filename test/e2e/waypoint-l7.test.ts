import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { WebSocket } from 'ws';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { grpcFrame, grpcMessages } from '../../src/sim/apps/grpc-frame.js';
import { parseLogLines } from '../../src/sim/kubelet/container-log.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { eventually } from '../helpers/apiserver.js';
import { sample } from '../helpers/prometheus.js';
import { rootTest } from '../helpers/root.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { ambientNamespaceWithClient } from '../helpers/mesh-pods.js';
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
${ambientNamespaceWithClient('shop')}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
---
${deployment('v1')}
---
${deployment('v2')}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grpc, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: grpc}}
  template:
    metadata: {labels: {app: grpc}}
    spec:
      nodeName: node-2
      containers:
      - name: grpc
        image: grpc-echo
        ports: [{containerPort: 9090}]
        readinessProbe: {tcpSocket: {port: 9090}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: shop, labels: {warren.io/use-waypoint: waypoint}}
spec:
  selector: {app: grpc}
  ports: [{name: grpc, port: 9090, targetPort: 9090}]
`;

interface Answer {
  status: number;
  /** the pod that served it (http-echo's JSON), when it did */
  pod?: string;
  /** the address the app saw the request come from */
  clientIp?: string;
  /** the request headers as the app received them */
  headers?: Record<string, string>;
  /** http-echo's /flaky: how many tries of this request id the app saw */
  attempt?: number;
  body: string;
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message?: string;
}

interface Conditioned {
  status?: { parents?: Array<{ controllerName?: string; conditions?: Condition[] }>; conditions?: Condition[] };
}

interface Call {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
}

interface GrpcAnswer {
  status: number;
  headers: Record<string, string | undefined>;
  messages: string[];
  trailers: Record<string, string | undefined>;
}

/** One gRPC call (a single request message) on an h2c session; grpc-status in the trailers, or in the headers of a trailers-only answer. */
function grpcCall(session: ClientHttp2Session, path: string, message: string): Promise<GrpcAnswer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let headers: Record<string, string | undefined> = {};
    let trailers: Record<string, string | undefined> = {};
    const text = (h: object): Record<string, string | undefined> => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v === undefined ? undefined : String(v)]));
    req.on('response', (h) => (headers = text(h)));
    req.on('trailers', (t) => (trailers = text(t)));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (trailers['grpc-status'] === undefined && headers['grpc-status'] !== undefined) trailers = headers;
      resolve({ status: Number(headers[':status']), headers, messages: grpcMessages(Buffer.concat(chunks)).map((m) => m.toString()), trailers });
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.close());
    req.end(grpcFrame(message));
  });
}

/** One HTTP/1.1 request from inside a pod's netns (its agent captures it like any app's). */
async function call(netns: string, host: string, port: number, method: string, headers: Record<string, string> = {}, path = '/'): Promise<Answer> {
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host, port, mark: 0, timeoutMs: 3000 });
  return send(host, port, { method, path, headers: { connection: 'close', ...headers } }, { createConnection: () => socket });
}

/** An agent whose connections are made inside the pod's netns, kept alive and reused one at a time. */
function keepAliveFrom(netns: string): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  type Done = (err: Error | null, socket?: unknown) => void;
  (agent as unknown as { createConnection: (o: { host: string; port: number }, cb: Done) => undefined }).createConnection = (o, cb) => {
    connectFromNetns({ netns: `/var/run/netns/${netns}`, host: o.host, port: Number(o.port), mark: 0, timeoutMs: 3000 }).then((s) => cb(null, s), (err: Error) => cb(err));
    return undefined;
  };
  return agent;
}

function send(host: string, port: number, c: Call, transport: { agent?: Agent; createConnection?: () => Socket }): Promise<Answer> {
  const method = c.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: c.path ?? '/', method, headers: c.headers ?? {}, ...transport }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        let echo: { pod?: string; client?: { ip?: string }; headers?: Record<string, string>; attempt?: number } = {};
        try {
          echo = JSON.parse(body) as typeof echo;
        } catch {
          echo = {};
        }
        resolve({ status: res.statusCode ?? 0, body, ...(echo.pod === undefined ? {} : { pod: echo.pod, clientIp: echo.client?.ip ?? '', headers: echo.headers ?? {} }), ...(echo.attempt !== undefined ? { attempt: echo.attempt } : {}) });
      });
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${host}:${port}${c.path ?? '/'}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

for (const dataplane of testDataplanes())
rootTest(`waypoint L7 end to end (--dataplane ${dataplane}): the real warren waypoint-proxy in its pod counts, routes by header and weight, times out, retries, upgrades, keeps the last good route, authorizes by method and JWT, and fails closed when gone`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-waypoint-l7-`);
  try {
    const kc = await simClusterWith(stateDir, 16551, MANIFEST, dataplane);
    const kubeconfig = `${stateDir}/kubeconfig`;
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: 'shop' })).items;
    await eventually(async () => (await pods()).length === 4 && (await pods()).every(readyAndEnrolled), 'client, web-v1, web-v2 and grpc ready and enrolled', 90_000);
    const clientNs = netnsOf((await pods()).find((p) => p.metadata!.name === 'client')!);
    const vip = (await core.readNamespacedService({ namespace: 'shop', name: 'web' })).spec!.clusterIP!;
    const get = (headers: Record<string, string> = {}): Promise<Answer> => call(clientNs, vip, 8080, 'GET', headers);
    const waypointPod = async (): Promise<V1Pod | undefined> => (await pods()).find((p) => p.metadata?.labels?.['gateway.networking.k8s.io/gateway-name'] === 'waypoint' && readyAndEnrolled(p));
    /** a sample of the waypoint's metrics, read from its admin port inside its pod (0 while there is none) */
    const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
      const pod = await waypointPod();
      if (pod === undefined) return 0;
      const metrics = await httpGetInNetns({ netns: netnsOf(pod), host: '127.0.0.1', port: 15020, path: '/metrics' });
      return sample(metrics.body.toString(), name, labels) ?? 0;
    };
    /** istio_requests_total{reporter="waypoint"} for the web Service with this response code */
    const counted = (code: string): Promise<number> => metric('istio_requests_total', { reporter: 'waypoint', destination_service_name: 'web', response_code: code });
    /** the access-log lines of the waypoint pod now serving */
    const accessLog = async (): Promise<Array<Record<string, unknown>>> => {
      const pod = (await waypointPod())!;
      const log = await readFile(`${stateDir}/pods/shop/${pod.metadata!.name!}/waypoint.log`, 'utf8');
      return parseLogLines(log).filter((l) => l.text.includes('"msg":"request"')).map((l) => JSON.parse(l.text) as Record<string, unknown>);
    };
    const httpRoute = (name: string, spec: object): Promise<unknown> =>
      custom.createNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: 'shop', body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: 'shop' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 8080 }], ...spec } } });
    /** the Accepted condition the waypoint wrote on an HTTPRoute */
    const routeAccepted = async (name: string): Promise<{ status: string; reason: string; message?: string } | undefined> => {
      const route = (await custom.getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: 'shop', name })) as Conditioned;
      return route.status?.parents?.find((p) => p.controllerName === 'warren.io/waypoint')?.conditions?.find((c) => c.type === 'Accepted');
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

    await t.test('traffic shifting: an HTTPRoute weighting web-v1 80 and web-v2 20 splits 1000 keep-alive requests within ±5 %', async () => {
      await httpRoute('web-canary', { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/canary' } }], backendRefs: [{ name: 'web-v1', port: 8080, weight: 80 }, { name: 'web-v2', port: 8080, weight: 20 }] }] });
      const agent = keepAliveFrom(clientNs);
      try {
        const canary = (): Promise<Answer> => send(vip, 8080, { path: '/canary' }, { agent });
        await eventually(async () => {
          const pods = new Set<string>();
          for (let i = 0; i < 20; i++) pods.add(((await canary().catch(() => undefined))?.pod ?? '').replace(/-[^-]+-[^-]+$/, ''));
          return pods.size === 2 && pods.has('web-v1') && pods.has('web-v2');
        }, 'the split applied', 30_000);
        // 1000 draws at p = 0.8: one standard deviation is 1.3 %, so ±5 % fails about once in 30 000 runs.
        let v1 = 0;
        for (let i = 0; i < 1000; i++) {
          const a = await canary();
          assert.equal(a.status, 200);
          if (/^web-v1-/.test(a.pod ?? '')) v1++;
          else assert.match(a.pod ?? '', /^web-v2-/);
        }
        assert.ok(v1 >= 750 && v1 <= 850, `web-v1 served ${v1} of 1000 (80 % ± 5 % expected)`);
      } finally {
        agent.destroy();
      }
    });

    await t.test('request timeout: a backend slower than the route\'s timeouts.request gets 504 with response flag UT at the timeout', async () => {
      await httpRoute('web-timeout', { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/delay' } }], backendRefs: [{ name: 'web-v1', port: 8080 }], timeouts: { request: '500ms' } }] });
      const slow = (seconds: string): Promise<Answer> => call(clientNs, vip, 8080, 'GET', {}, `/delay/${seconds}`);
      await eventually(async () => (await slow('3').catch(() => undefined))?.status === 504, 'the timeout applied', 30_000);
      const timedOut = (): Promise<number> => metric('istio_requests_total', { reporter: 'waypoint', destination_service_name: 'web-v1', response_code: '504', response_flags: 'UT' });
      const before = await timedOut();
      const t0 = performance.now();
      const late = await slow('3');
      const took = performance.now() - t0;
      assert.equal(late.status, 504);
      assert.equal(late.pod, undefined, 'answered by the waypoint, not the app');
      assert.match(late.body, /upstream request timeout/);
      assert.ok(took >= 450 && took < 2500, `504 after ${Math.round(took)} ms, the route says 500 ms and the app 3 s`);
      assert.equal(await timedOut(), before + 1, 'counted with response_flags UT');
      assert.equal((await slow('0.1')).status, 200, 'a backend within the timeout answers');
    });

    await t.test('retries: a backend failing the first 2 tries answers 200 on the 3rd through the route\'s retry, and the retries are counted', async () => {
      await httpRoute('web-retry', { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/flaky' } }], backendRefs: [{ name: 'web-v1', port: 8080 }], retry: { attempts: 2, codes: [503], backoff: '10ms' } }] });
      const attempt = (fails: number, id: string): Promise<Answer> => call(clientNs, vip, 8080, 'GET', { 'x-request-id': id }, `/flaky/${fails}`);
      await eventually(async () => (await attempt(2, `warm-${Date.now()}-${Math.random()}`).catch(() => undefined))?.status === 200, 'the retry applied', 30_000);
      const retried = (): Promise<number> => metric('warren_waypoint_upstream_retries_total', { destination_service: 'web-v1.shop.svc.cluster.local' });
      const before = await retried();
      const id = `retry-${Date.now()}`;
      const ok = await attempt(2, id);
      assert.equal(ok.status, 200);
      assert.equal(ok.attempt, 3, 'the app saw the request 3 times');
      assert.equal(ok.headers?.['x-envoy-attempt-count'], '3');
      assert.equal(await retried(), before + 2, 'two retries counted');
      await eventually(async () => (await accessLog()).some((l) => l.request_id === id && l.attempts === 3 && l.status === 200), 'the access log says attempts: 3', 10_000);
      const exhausted = await attempt(3, `${id}-3`);
      assert.equal(exhausted.status, 503, 'a backend failing 3 tries: the last failure is passed on after 2 retries');
      assert.equal(exhausted.attempt, 3);
    });

    await t.test('WebSocket: the upgrade goes through the waypoint to the routed backend and messages echo', async () => {
      const socket = await connectFromNetns({ netns: `/var/run/netns/${clientNs}`, host: vip, port: 8080, mark: 0, timeoutMs: 3000 });
      const ws = new WebSocket(`ws://${vip}:8080/`, { createConnection: () => socket } as unknown as WebSocket.ClientOptions);
      try {
        const reply = await new Promise<string>((resolve, reject) => {
          ws.once('open', () => ws.send('ping'));
          ws.once('message', (m: Buffer) => resolve(m.toString()));
          ws.once('error', reject);
          setTimeout(() => reject(new Error('no WebSocket echo in 5 s')), 5000).unref();
        });
        assert.match(reply, /^web-v1-.*: ping$/, 'echoed by web-v1, where the route sends requests without x-version');
      } finally {
        ws.terminate();
      }
    });

    await t.test('gRPC through the waypoint: a GRPCRoute routes unary and server-stream calls over h2c, grpc-status in the trailers, counted by grpc_response_status', async () => {
      const grpcVip = (await core.readNamespacedService({ namespace: 'shop', name: 'grpc' })).spec!.clusterIP!;
      const echoRoute = { parentRefs: [{ group: '', kind: 'Service', name: 'grpc', port: 9090 }], rules: [{ matches: ['Unary', 'Stream', 'Status'].map((method) => ({ method: { service: 'echo.Echo', method } })), backendRefs: [{ name: 'grpc', port: 9090 }] }] };
      await custom.createNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'grpcroutes', namespace: 'shop', body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', metadata: { name: 'echo', namespace: 'shop' }, spec: echoRoute } });
      // One h2c connection from the client pod (prior knowledge, as gRPC clients speak cleartext); its streams are the calls.
      const socket = await connectFromNetns({ netns: `/var/run/netns/${clientNs}`, host: grpcVip, port: 9090, mark: 0, timeoutMs: 3000 });
      const session = h2connect(`http://${grpcVip}:9090`, { createConnection: () => socket });
      session.on('error', () => undefined);
      const rpc = (method: string, message: string) => grpcCall(session, `/echo.Echo/${method}`, message);
      const byGrpcStatus = (code: string): Promise<number> => metric('istio_requests_total', { reporter: 'waypoint', destination_service_name: 'grpc', request_protocol: 'grpc', grpc_response_status: code });
      try {
        // No route but the Service's own endpoints before the GRPCRoute applies; an unmatched method after it is the waypoint's 404, UNIMPLEMENTED without the app.
        await eventually(async () => {
          const other = await rpc('Other', 'x').catch(() => undefined);
          return other?.trailers['grpc-status'] === '12' && other.headers['x-pod'] === undefined;
        }, 'the GRPCRoute applied (an unmatched method answered by the waypoint)', 30_000);
        const [ok, failed] = [await byGrpcStatus('0'), await byGrpcStatus('5')];
        const unary = await rpc('Unary', 'hi');
        assert.match(unary.headers['x-pod'] ?? '', /^grpc-/, 'served by the app');
        assert.deepEqual(unary.messages, [`${unary.headers['x-pod']}: hi`]);
        assert.equal(unary.trailers['grpc-status'], '0');
        const stream = await rpc('Stream', 'hi');
        assert.deepEqual(stream.messages, [0, 1, 2].map((i) => `${stream.headers['x-pod']}: hi ${i}`), 'three messages of a server stream');
        assert.equal(stream.trailers['grpc-status'], '0');
        const notFound = await rpc('Status', '5');
        assert.equal(notFound.trailers['grpc-status'], '5', "the app's status passed on in the trailers");
        assert.equal(notFound.status, 200);
        await eventually(async () => (await byGrpcStatus('0')) === ok + 2 && (await byGrpcStatus('5')) === failed + 1, 'istio_requests_total counts the calls by grpc_response_status', 10_000);
        const accepted = (await custom.getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'grpcroutes', namespace: 'shop', name: 'echo' })) as Conditioned;
        assert.equal(accepted.status?.parents?.find((p) => p.controllerName === 'warren.io/waypoint')?.conditions?.find((c) => c.type === 'Accepted')?.status, 'True');
      } finally {
        session.destroy();
      }
    });

    await t.test('a malformed HTTPRoute update: Accepted False naming the field, and the waypoint keeps serving the last good version', async () => {
      await eventually(async () => (await routeAccepted('web-timeout'))?.status === 'True', 'web-timeout Accepted', 20_000);
      // Valid for the CRD schema, refused by the waypoint: a backreference has no linear-time match.
      await custom.patchNamespacedCustomObject(
        { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: 'shop', name: 'web-timeout', body: { spec: { rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/delay/(a+)\\1' } }], backendRefs: [{ name: 'web-v1', port: 8080 }], timeouts: { request: '500ms' } }] } } },
        mergePatch,
      );
      await eventually(async () => (await routeAccepted('web-timeout'))?.status === 'False', 'Accepted False', 20_000);
      const c = (await routeAccepted('web-timeout'))!;
      assert.equal(c.reason, 'UnsupportedValue');
      assert.match(c.message ?? '', /spec\.rules\.0\.matches\.0\.path\.value/, 'the message names the field');
      assert.match(c.message ?? '', /keeps serving generation 1/);
      const slow = await call(clientNs, vip, 8080, 'GET', {}, '/delay/3');
      assert.equal(slow.status, 504, 'the last good version (PathPrefix /delay, 500 ms) still applies');
      assert.equal((await get()).status, 200, 'other routes unaffected');
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

    await t.test('JWT: a RequestAuthentication on the Service; /private needs a valid token (claim passed on as a header), a forged one is 401, none is 403', async () => {
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      const other = await generateKeyPair('ES256');
      const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
      const sign = (key: CryptoKey): Promise<string> => new SignJWT({ group: 'admins' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://issuer.shop').setSubject('alice').setAudience('web').setExpirationTime('10m').sign(key);
      const [token, forged] = [await sign(privateKey), await sign(other.privateKey)];
      const security = { group: 'security.warren.io', version: 'v1', namespace: 'shop' };
      const web = [{ group: '', kind: 'Service', name: 'web' }];
      await custom.createNamespacedCustomObject({ ...security, plural: 'requestauthentications', body: { apiVersion: 'security.warren.io/v1', kind: 'RequestAuthentication', metadata: { name: 'web-jwt', namespace: 'shop' }, spec: { targetRefs: web, jwtRules: [{ issuer: 'https://issuer.shop', audiences: ['web'], jwks, outputClaimToHeaders: [{ header: 'x-jwt-group', claim: 'group' }] }] } } });
      await custom.createNamespacedCustomObject({ ...security, plural: 'authorizationpolicies', body: { apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'private-needs-jwt', namespace: 'shop' }, spec: { targetRefs: web, action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }], to: [{ operation: { paths: ['/private*'] } }] }] } } });
      const privately = (headers: Record<string, string>): Promise<Answer> => call(clientNs, vip, 8080, 'GET', headers, '/private/data');
      await eventually(async () => (await privately({}).catch(() => undefined))?.status === 403 && (await privately({ authorization: `Bearer ${forged}` }).catch(() => undefined))?.status === 401, 'the JWT policies applied', 30_000);
      const ok = await privately({ authorization: `Bearer ${token}` });
      assert.equal(ok.status, 200);
      assert.match(ok.pod ?? '', /^web-v1-/);
      assert.equal(ok.headers?.['x-jwt-group'], 'admins', 'outputClaimToHeaders');
      assert.equal(ok.headers?.authorization, undefined, 'the token is not passed on (forwardOriginalToken unset)');
      const forgedAnswer = await privately({ authorization: `Bearer ${forged}` });
      assert.equal(forgedAnswer.status, 401);
      assert.equal(forgedAnswer.pod, undefined);
      const none = await privately({});
      assert.equal(none.status, 403);
      assert.equal(none.pod, undefined);
      assert.equal((await get()).status, 200, 'a path that needs no token is served without one');
      assert.equal((await get({ authorization: 'Bearer not-a-jwt' })).status, 401, 'an invalid token is refused anywhere on the Service');
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
