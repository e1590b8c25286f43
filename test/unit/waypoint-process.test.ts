import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as h2connect, createServer as createH2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { WebSocket, WebSocketServer } from 'ws';
import { waypointPolicy } from '../../src/waypoint/l7-authorization.js';
import { explainL7, parseHttpProbe } from '../../src/waypoint/l7-explain.js';
import { eventually, type TestApiServer } from '../helpers/apiserver.js';
import { dialWaypoint, send, startWaypointProcess, waypointAgent, type Dial, type WaypointProcess, waypointWorld } from '../helpers/waypoint.js';

/**
 * The waypoint process end to end on loopback: a real API server, a real
 * `warren waypoint-proxy` process, real backends (HTTP/1.1, h2c gRPC,
 * WebSocket, TCP), clients that send the PROXY v2 header a node agent would.
 * Istio's traffic-management and authorization tasks, reproduced.
 */
const run = promisify(execFile);
const NS = 'demo';
const ROUTES = { group: 'gateway.networking.k8s.io', version: 'v1', namespace: NS };
const SECURITY = { group: 'security.warren.io', version: 'v1', namespace: NS };
/** 4 MiB, every byte depending on its offset: a chunk lost, repeated or reordered shows. */
const BIG = Buffer.from(Array.from({ length: 4 << 20 }, (_, i) => (i * 31 + (i >> 12)) & 0xff));
const listen = <S extends Server | Http2Server | ReturnType<typeof createTcpServer>>(s: S, host: string, port = 0): Promise<number> =>
  new Promise((resolve) => s.listen(port, host, () => resolve((s.address() as AddressInfo).port)));

describe('warren waypoint-proxy', () => {
  let api: TestApiServer;
  let wp: WaypointProcess;
  const servers: Array<{ close(cb?: () => void): unknown; closeAllConnections?: () => void }> = [];
  const vips = new Map<string, string>();
  let flakyCalls = 0;
  const seenHosts: string[] = [];
  let custom: CustomObjectsApi;
  const jwt: { token?: string; forged?: string; jwks?: string } = {};
  const dial = (service: string, port = 80, principal = 'spiffe://cluster.local/ns/demo/sa/client'): Dial => ({ destination: { address: vips.get(service)!, port }, principal });

  before(async () => {
    const world = await waypointWorld(NS);
    ({ api, custom } = world);
    const { core, discovery } = world;

    // Two versions of an app on 127.0.0.2 and 127.0.0.3, same port, answering with their version.
    const app = (version: string) => (req: IncomingMessage, res: ServerResponse) => {
      seenHosts.push(`${version} ${req.headers.host}`);
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/slow') return void setTimeout(() => res.end('late'), 3000);
      if (url.pathname === '/flaky') {
        flakyCalls++;
        if (flakyCalls % 3 !== 0) return void res.writeHead(500).end('fail');
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ version, method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() })));
    };
    const v1 = createHttpServer(app('v1'));
    const v2 = createHttpServer(app('v2'));
    servers.push(v1, v2);
    const appPort = await listen(v1, '127.0.0.2');
    await listen(v2, '127.0.0.3', appPort);
    // gRPC (h2c): unary echo and a 3-message server stream, status in trailers.
    const grpc = createH2Server();
    servers.push(grpc);
    grpc.on('stream', (s, headers) => {
      const stream = s as ServerHttp2Stream;
      const frame = (text: string): Buffer => {
        const b = Buffer.from(text);
        const h = Buffer.alloc(5);
        h.writeUInt32BE(b.length, 1);
        return Buffer.concat([h, b]);
      };
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' }));
        const request = Buffer.concat(chunks).subarray(5).toString();
        if (headers[':path'] === '/echo.Echo/Stream') for (let i = 0; i < 3; i++) stream.write(frame(`${request}-${i}`));
        else stream.write(frame(`echo:${request}`));
        stream.end();
      });
    });
    const grpcPort = await listen(grpc, '127.0.0.4');
    const wsHttp = createHttpServer();
    const wss = new WebSocketServer({ server: wsHttp });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo:${m.toString()}`)));
    servers.push(wsHttp);
    const wsPort = await listen(wsHttp, '127.0.0.5');
    const tcp = createTcpServer((s) => s.pipe(s));
    servers.push(tcp);
    const tcpPort = await listen(tcp, '127.0.0.6');
    // HTTP/1.1 framing the waypoint must carry as it is: trailers, 1xx before the answer, a body larger than the sockets' buffers, a request body echoed.
    const framing = createHttpServer((req, res) => {
      if (req.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('part one, ');
        res.addTrailers({ 'x-checksum': 'abc123' });
        return void res.end('part two');
      }
      if (req.url === '/early-hints') {
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
        return void setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('final'), 20);
      }
      if (req.url === '/big') return void res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length }).end(BIG);
      req.pipe(res);
    });
    servers.push(framing);
    const framingPort = await listen(framing, '127.0.0.7');

    const service = async (name: string, endpoints: Array<{ ip: string; port: number }>, port = 80): Promise<void> => {
      const svc = await core.createNamespacedService({ namespace: NS, body: { metadata: { name, labels: { 'warren.io/use-waypoint': 'waypoint' } }, spec: { ports: [{ port, name: 'http' }] } } });
      vips.set(name, svc.spec!.clusterIP!);
      await discovery.createNamespacedEndpointSlice({
        namespace: NS,
        body: {
          metadata: { name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: endpoints[0]!.port, protocol: 'TCP' }],
          endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: true } })),
        },
      });
    };
    await service('web', [{ ip: '127.0.0.2', port: appPort }, { ip: '127.0.0.3', port: appPort }]);
    await service('web-v1', [{ ip: '127.0.0.2', port: appPort }]);
    await service('web-v2', [{ ip: '127.0.0.3', port: appPort }]);
    for (const name of ['shift', 'slow', 'flaky', 'secure', 'jwt', 'mirror']) await service(name, [{ ip: '127.0.0.2', port: appPort }]);
    await service('grpc', [{ ip: '127.0.0.4', port: grpcPort }], 9000);
    await service('ws', [{ ip: '127.0.0.5', port: wsPort }]);
    await service('tcp-echo', [{ ip: '127.0.0.6', port: tcpPort }], 7000);
    await service('framing', [{ ip: '127.0.0.7', port: framingPort }]);

    const route = (kind: 'HTTPRoute' | 'GRPCRoute', name: string, parent: string, rules: unknown[]) =>
      custom.createNamespacedCustomObject({ ...ROUTES, plural: `${kind.toLowerCase()}s`, body: { apiVersion: 'gateway.networking.k8s.io/v1', kind, metadata: { name, namespace: NS }, spec: { parentRefs: [{ group: '', kind: 'Service', name: parent, port: 80 }], rules } } });
    await route('HTTPRoute', 'web-by-user', 'web', [
      { matches: [{ headers: [{ name: 'end-user', value: 'jason' }] }], backendRefs: [{ name: 'web-v2', port: 80 }] },
      { backendRefs: [{ name: 'web-v1', port: 80 }] },
    ]);
    await route('HTTPRoute', 'shift', 'shift', [{ backendRefs: [{ name: 'web-v1', port: 80, weight: 80 }, { name: 'web-v2', port: 80, weight: 20 }] }]);
    await route('HTTPRoute', 'slow', 'slow', [{ backendRefs: [{ name: 'slow', port: 80 }], timeouts: { request: '300ms' } }]);
    await route('HTTPRoute', 'mirror', 'mirror', [{ backendRefs: [{ name: 'web-v1', port: 80 }], filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'web-v2', port: 80 } } }] }]);
    await route('HTTPRoute', 'flaky', 'flaky', [{ backendRefs: [{ name: 'flaky', port: 80 }], retry: { attempts: 2, codes: [500], backoff: '10ms' } }]);

    const policy = (kind: 'AuthorizationPolicy' | 'RequestAuthentication', name: string, spec: object) =>
      custom.createNamespacedCustomObject({ ...SECURITY, plural: kind === 'AuthorizationPolicy' ? 'authorizationpolicies' : 'requestauthentications', body: { apiVersion: 'security.warren.io/v1', kind, metadata: { name, namespace: NS }, spec } });
    const secure = [{ kind: 'Service', group: '', name: 'secure' }];
    await policy('AuthorizationPolicy', 'secure-allow', {
      targetRefs: secure,
      rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] }, { to: [{ operation: { paths: ['/admin'] } }], when: [{ key: 'request.headers[x-team]', values: ['blue'] }] }],
    });
    await policy('AuthorizationPolicy', 'secure-deny-delete', { targetRefs: secure, action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] });

    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    jwt.jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
    const sign = (key: CryptoKey) => new SignJWT({ group: 'admins' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://issuer.demo').setSubject('alice').setAudience('web').setExpirationTime('10m').sign(key);
    jwt.token = await sign(privateKey);
    jwt.forged = await sign(other.privateKey);
    const jwtTarget = [{ kind: 'Service', group: '', name: 'jwt' }];
    await policy('RequestAuthentication', 'jwt', { targetRefs: jwtTarget, jwtRules: [{ issuer: 'https://issuer.demo', audiences: ['web'], jwks: jwt.jwks, outputClaimToHeaders: [{ header: 'x-jwt-group', claim: 'group' }] }] });
    await policy('AuthorizationPolicy', 'jwt-require', { targetRefs: jwtTarget, rules: [{ from: [{ source: { requestPrincipals: ['https://issuer.demo/*'] } }] }] });

    wp = await startWaypointProcess(api.kubeconfigText, api.dir);
  });

  after(async () => {
    if (process.env.WAYPOINT_TEST_LOG) console.error(wp?.log.join("\n"));
    await wp?.stop();
    for (const s of servers) {
      s.closeAllConnections?.();
      await new Promise((r) => s.close(() => r(undefined)));
    }
    await api?.stop();
  });

  const json = (body: string): { version: string; headers: Record<string, string>; path: string } => JSON.parse(body);

  test('no route: requests go to the Service endpoints, with x-request-id and traceparent added, and are counted', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('web-v1'));
    const r = await send(agent, { path: '/hello', headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
    agent.destroy();
    assert.equal(r.status, 200);
    const seen = json(r.body);
    assert.equal(seen.version, 'v1');
    assert.match(seen.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.match(seen.headers.traceparent!, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    assert.notEqual(seen.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'this hop is a new span of the same trace');
    const metrics = await (await fetch(`http://127.0.0.1:${wp.ports.admin}/metrics`)).text();
    assert.match(metrics, /istio_requests_total\{[^}]*reporter="waypoint"[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/demo\/sa\/client"[^}]*destination_service="web-v1\.demo\.svc\.cluster\.local"[^}]*response_code="200"[^}]*\} 1/);
    assert.match(metrics, /istio_request_duration_milliseconds_bucket\{le="0.5",/);
    // The access-log line reaches us through the process's stdout after the response: wait for it (bounded).
    await eventually(() => /"path":"\/hello".*"msg":"request"/.test(wp.log.join('\n')), 'the access-log line of GET /hello', 5000);
  });

  test('header routing: end-user: jason goes to v2, everyone else to v1 (keep-alive connection)', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('web'));
    for (let i = 0; i < 5; i++) {
      assert.equal(json((await send(agent, { headers: { 'end-user': 'jason' } })).body).version, 'v2');
      assert.equal(json((await send(agent, {})).body).version, 'v1');
    }
    agent.destroy();
  });

  test('traffic shifting 80/20: 1000 requests land within ±5 %', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('shift'));
    let v1 = 0;
    for (let i = 0; i < 1000; i++) if (json((await send(agent, {})).body).version === 'v1') v1++;
    agent.destroy();
    assert.ok(v1 >= 750 && v1 <= 850, `v1 got ${v1} of 1000`);
  });

  test('timeouts: a slow backend gets 504 at the route timeout', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('slow'));
    const t0 = Date.now();
    const r = await send(agent, { path: '/slow' });
    agent.destroy();
    assert.equal(r.status, 504);
    assert.ok(Date.now() - t0 < 1500, `answered after ${Date.now() - t0} ms`);
  });

  test('retries: a backend failing 2 of 3 answers 200 through the route retry', async () => {
    flakyCalls = 0;
    const agent = waypointAgent(wp.ports.listen, dial('flaky'));
    const r = await send(agent, { path: '/flaky' });
    agent.destroy();
    assert.equal(r.status, 200);
    assert.equal(flakyCalls, 3);
    const metrics = await (await fetch(`http://127.0.0.1:${wp.ports.admin}/metrics`)).text();
    assert.match(metrics, /warren_waypoint_upstream_retries_total\{destination_service="flaky\.demo\.svc\.cluster\.local"\} 2/, 'the two retries counted');
  });

  test('warren routes prints the compiled route table from the admin API', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('../../src/cli/main.js', import.meta.url)), 'routes', '--address', `127.0.0.1:${wp.ports.admin}`]);
    assert.match(stdout, /^waypoint demo\/waypoint$/m);
    assert.match(stdout, /^Service demo\/shift:80\n {3}1\. PathPrefix \/ {2}→ {2}demo\/web-v1:80 weight 80, demo\/web-v2:80 weight 20$/m);
    assert.match(stdout, /HTTPRoute demo\/slow rule 0; timeout 300ms/);
  });

  test('with --otlp-endpoint, each request is exported as a span of the trace it continued (OTLP/HTTP)', async () => {
    const bodies: string[] = [];
    const collector = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(`${req.url} ${req.headers['content-type']} ${Buffer.concat(chunks).toString('latin1')}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const port = await listen(collector, '127.0.0.1');
    const traced = await startWaypointProcess(api.kubeconfigText, api.dir, ['--otlp-endpoint', `http://127.0.0.1:${port}/v1/traces`]);
    try {
      const agent = waypointAgent(traced.ports.listen, dial('web-v1'));
      assert.equal((await send(agent, { path: '/traced', headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } })).status, 200);
      agent.destroy();
      await eventually(() => bodies.length > 0, 'a span export', 15_000);
      assert.match(bodies[0]!, /^\/v1\/traces /);
      const text = bodies.join('\n');
      const hex = '4bf92f3577b34da6a3ce929d0e0e4736';
      assert.ok(text.includes(hex) || text.includes(Buffer.from(hex, 'hex').toString('latin1')), 'the exported span carries the trace id');
      assert.ok(text.includes('/traced'), 'and the request path');
    } finally {
      await traced.stop();
      collector.close();
    }
  });

  test('RequestMirror: the backend answers, the mirror gets a copy with -shadow on the host', async () => {
    seenHosts.length = 0;
    const agent = waypointAgent(wp.ports.listen, dial('mirror'));
    const r = await send(agent, { method: 'POST', path: '/m', body: 'payload' });
    agent.destroy();
    assert.equal(json(r.body).version, 'v1');
    await eventually(() => seenHosts.includes('v2 web.demo-shadow'), 'the mirrored copy');
  });

  test('L7 authorization: GET on the prefix allowed, DELETE 403 (DENY first), other paths 403, header condition', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('secure'));
    assert.equal((await send(agent, { path: '/api/items' })).status, 200);
    const denied = await send(agent, { method: 'DELETE', path: '/api/items' });
    assert.equal(denied.status, 403);
    assert.doesNotMatch(denied.body, /secure-deny-delete/, 'the 403 names no policy');
    assert.equal((await send(agent, { method: 'POST', path: '/api/items' })).status, 403);
    assert.equal((await send(agent, { path: '/other' })).status, 403);
    assert.equal((await send(agent, { path: '/admin', headers: { 'x-team': 'blue' } })).status, 200);
    assert.equal((await send(agent, { path: '/admin', headers: { 'x-team': 'red' } })).status, 403);
    agent.destroy();
    await eventually(() => /"decision":"deny","policy":"demo\/secure-deny-delete"/.test(wp.log.join('\n')), 'the access-log line of the denied DELETE', 5000);
    const explain = async (q: string) => (await (await fetch(`http://127.0.0.1:${wp.ports.admin}/debug/explain?service=demo/secure&port=80&${q}`)).json()) as { decision: { allow: boolean; policy?: string }; response?: { status: number } };
    const del = await explain('method=DELETE&path=/api/x');
    assert.deepEqual([del.decision.allow, del.decision.policy, del.response?.status], [false, 'demo/secure-deny-delete', 403]);
    assert.equal((await explain('method=GET&path=/admin&header=x-team:blue')).decision.allow, true);
  });

  test('JWT: a valid token passes (claim copied to a header, token stripped), a forged one is 401, none is 403', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('jwt'));
    const ok = await send(agent, { headers: { authorization: `Bearer ${jwt.token}` } });
    assert.equal(ok.status, 200);
    assert.equal(json(ok.body).headers['x-jwt-group'], 'admins');
    assert.equal(json(ok.body).headers.authorization, undefined);
    assert.equal((await send(agent, { headers: { authorization: `Bearer ${jwt.forged}` } })).status, 401);
    assert.equal((await send(agent, { headers: { authorization: 'Bearer not-a-jwt' } })).status, 401);
    assert.equal((await send(agent, {})).status, 403);
    agent.destroy();
  });

  test('gRPC over h2c: unary and server streaming with grpc-status in the trailers', async () => {
    const session = h2connect('http://grpc.demo:9000', { createConnection: () => dialWaypoint(wp.ports.listen, dial('grpc', 9000)) });
    try {
      const call = (path: string): Promise<{ messages: string[]; trailers: Record<string, unknown> }> =>
        new Promise((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
          const chunks: Buffer[] = [];
          let trailers: Record<string, unknown> = {};
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('trailers', (t) => (trailers = t));
          req.on('end', () => {
            const all = Buffer.concat(chunks);
            const messages: string[] = [];
            for (let at = 0; at + 5 <= all.length; ) {
              const n = all.readUInt32BE(at + 1);
              messages.push(all.subarray(at + 5, at + 5 + n).toString());
              at += 5 + n;
            }
            resolve({ messages, trailers });
          });
          req.on('error', reject);
          const b = Buffer.from('hi');
          const h = Buffer.alloc(5);
          h.writeUInt32BE(b.length, 1);
          req.end(Buffer.concat([h, b]));
        });
      const unary = await call('/echo.Echo/Unary');
      assert.deepEqual(unary.messages, ['echo:hi']);
      assert.equal(unary.trailers['grpc-status'], '0');
      const stream = await call('/echo.Echo/Stream');
      assert.deepEqual(stream.messages, ['hi-0', 'hi-1', 'hi-2']);
      assert.equal(stream.trailers['grpc-status'], '0');
    } finally {
      session.close();
    }
    const metrics = await (await fetch(`http://127.0.0.1:${wp.ports.admin}/metrics`)).text();
    assert.match(metrics, /istio_requests_total\{[^}]*destination_service="grpc\.demo[^}]*request_protocol="grpc"[^}]*grpc_response_status="0"\} 2/);
  });

  test('HTTP/1.1 framing passes through: expect 100-continue, a chunked request body, response trailers, a 1xx before the answer, 4 MiB to a client that stalls', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('framing'));
    const exchange = (options: { method?: string; path: string; headers?: Record<string, string>; body?: (req: ClientRequest) => void; stall?: boolean }) =>
      new Promise<{ status: number; body: Buffer; trailers: Record<string, string | undefined> }>((resolve, reject) => {
        const req = request({ agent, host: 'framing.demo', method: options.method ?? 'GET', path: options.path, headers: options.headers ?? {}, timeout: 10_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            // a client that stops reading: the waypoint must hold the upstream back, not drop or buffer without end
            if (options.stall && chunks.length === 1) {
              res.pause();
              setTimeout(() => res.resume(), 300);
            }
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), trailers: res.trailers }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
        req.on('error', reject);
        if (options.body) options.body(req);
        else req.end();
      });
    const continued = await exchange({ method: 'POST', path: '/echo', headers: { expect: '100-continue', 'content-length': '5' }, body: (req) => req.on('continue', () => req.end('hello')) });
    assert.deepEqual([continued.status, continued.body.toString()], [200, 'hello'], 'expect: 100-continue');
    const chunked = await exchange({ method: 'POST', path: '/echo', body: (req) => {
      req.write('a'.repeat(300_000));
      setTimeout(() => req.end('b'.repeat(300_000)), 20);
    } });
    assert.equal(chunked.status, 200);
    const sentBody = 'a'.repeat(300_000) + 'b'.repeat(300_000);
    assert.ok(chunked.body.toString() === sentBody, `a chunked request body larger than the retry buffer, streamed: ${chunked.body.length} bytes of ${sentBody.length} came back, ${chunked.body.toString().split('b').length - 1} of them b`);
    const trailers = await exchange({ path: '/trailers' });
    assert.deepEqual([trailers.body.toString(), trailers.trailers['x-checksum']], ['part one, part two', 'abc123']);
    const hinted = await exchange({ path: '/early-hints' });
    assert.deepEqual([hinted.status, hinted.body.toString()], [200, 'final'], 'the 103 before it does not replace the answer');
    const big = await exchange({ path: '/big', stall: true });
    assert.equal(big.body.length, BIG.length);
    assert.ok(big.body.equals(BIG), '4 MiB arrive intact through a stalled client');
    agent.destroy();
  });

  test('WebSocket: the upgrade is passed through and messages echo', async () => {
    const ws = new WebSocket('ws://ws.demo/', { createConnection: () => dialWaypoint(wp.ports.listen, dial('ws')) } as unknown as WebSocket.ClientOptions);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('ping'));
      ws.once('message', (m) => resolve(m.toString()));
      ws.once('error', reject);
    });
    ws.close();
    assert.equal(reply, 'echo:ping');
  });

  test('a non-HTTP stream is forwarded as TCP to the Service endpoint', async () => {
    const s = dialWaypoint(wp.ports.listen, dial('tcp-echo', 7000));
    s.write('\x16\x03\x01 not http\n');
    const echoed = await new Promise<string>((resolve, reject) => {
      let got = '';
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.endsWith('\n')) resolve(got);
      });
      s.on('error', reject);
    });
    s.destroy();
    assert.equal(echoed, '\x16\x03\x01 not http\n');
  });

  test('bad input: an oversized header is 431 and a stream without a PROXY header is dropped; the waypoint keeps serving', async () => {
    const agent = waypointAgent(wp.ports.listen, dial('web-v1'));
    assert.equal((await send(agent, { headers: { 'x-big': 'a'.repeat(70_000) } })).status, 431);
    agent.destroy();
    const raw = (await import('node:net')).connect({ host: '127.0.0.1', port: wp.ports.listen });
    raw.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await new Promise((resolve) => raw.once('close', resolve));
    const again = waypointAgent(wp.ports.listen, dial('web-v1'));
    assert.equal((await send(again, {})).status, 200);
    again.destroy();
    const metrics = await (await fetch(`http://127.0.0.1:${wp.ports.admin}/metrics`)).text();
    assert.match(metrics, /warren_waypoint_refused_connections_total\{reason="ERR_PROXY_SIGNATURE"\} 1/);
  });

  test('a malformed route update gets a condition naming the field, and the last good version keeps serving', async () => {
    const plural = 'httproutes';
    type Status = { status?: { parents?: Array<{ controllerName: string; conditions: Array<{ type: string; status: string; reason: string; message: string }> }> } };
    const accepted = async () => ((await custom.getNamespacedCustomObject({ ...ROUTES, plural, name: 'web-by-user' })) as Status).status?.parents?.find((p) => p.controllerName === 'warren.io/waypoint')?.conditions.find((c) => c.type === 'Accepted');
    await eventually(async () => (await accepted())?.status === 'True', 'Accepted=True written by the waypoint');
    await custom.patchNamespacedCustomObject({ ...ROUTES, plural, name: 'web-by-user', body: [{ op: 'replace', path: '/spec/rules/0/matches/0', value: { path: { type: 'RegularExpression', value: '(a+)\\1' }, headers: [{ name: 'end-user', value: 'jason' }] } }] });
    await eventually(async () => (await accepted())?.status === 'False', 'Accepted=False');
    const c = (await accepted())!;
    assert.equal(c.reason, 'UnsupportedValue');
    assert.match(c.message, /spec\.rules\.0\.matches\.0\.path\.value: .*linear-time/);
    assert.match(c.message, /keeps serving generation 1/);
    const agent = waypointAgent(wp.ports.listen, dial('web'));
    assert.equal(json((await send(agent, { headers: { 'end-user': 'jason' } })).body).version, 'v2', 'the last good route still applies');
    agent.destroy();
    const table = (await (await fetch(`http://127.0.0.1:${wp.ports.admin}/debug/routes`)).json()) as { routes: Array<{ parent: string; entries: Array<{ match: string }> }> };
    assert.deepEqual(
      table.routes.find((r) => r.parent === 'Service demo/web:80')!.entries.map((e) => e.match),
      ['PathPrefix /, header end-user=jason', 'PathPrefix /'],
    );
  });

  test('policies explain --method/--path/--header agrees with the waypoint\'s /debug/explain, policy and rule included', async () => {
    const list = (await custom.listClusterCustomObject({ group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies' })) as { items: unknown[] };
    const policies = list.items.flatMap((o) => waypointPolicy(o)?.policy ?? []);
    const principal = 'spiffe://cluster.local/ns/demo/sa/client';
    const from = { ip: '127.0.0.9', principal, enrolled: true };
    const waypoints = [{ waypoint: 'demo/waypoint', principal: '', via: 'Service demo/secure', applied: false, destination: { ip: vips.get('secure')!, port: 80, service: { namespace: NS, name: 'secure' } } }];
    const cases: Array<{ method: string; path: string; headers: string[] }> = [
      { method: 'GET', path: '/api/items', headers: [] },
      { method: 'DELETE', path: '/api/items', headers: [] },
      { method: 'POST', path: '/api/items', headers: [] },
      { method: 'GET', path: '/admin', headers: ['x-team=blue'] },
      { method: 'GET', path: '/admin', headers: ['x-team=red'] },
    ];
    for (const c of cases) {
      const q = new URLSearchParams({ service: `${NS}/secure`, port: '80', method: c.method, path: c.path, principal, 'source-ip': from.ip });
      for (const h of c.headers) q.append('header', h.replace('=', ':'));
      const reference = ((await (await fetch(`http://127.0.0.1:${wp.ports.admin}/debug/explain?${q}`)).json()) as { decision: unknown }).decision;
      const ours = explainL7({ from, waypoints }, policies, parseHttpProbe(c))[0]!.decision;
      assert.deepEqual(ours, reference, `${c.method} ${c.path} ${c.headers.join(' ')}`);
    }
  });

  test("allowedRoutes: a route from a namespace the Gateway's listener does not admit is NotAllowedByListeners and unused until the listener admits it", async () => {
    const plural = 'httproutes';
    type Status = { status?: { parents?: Array<{ controllerName: string; conditions: Array<{ type: string; status: string; reason: string; message: string }> }> } };
    const accepted = async (namespace: string, name: string) => ((await custom.getNamespacedCustomObject({ ...ROUTES, namespace, plural, name })) as Status).status?.parents?.find((p) => p.controllerName === 'warren.io/waypoint')?.conditions.find((c) => c.type === 'Accepted');
    await api.kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'other', labels: { team: 'blue' } } } });
    await custom.createNamespacedCustomObject({ ...ROUTES, plural: 'gateways', body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS }, spec: { gatewayClassName: 'warren-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } } });
    const redirect = (namespace: string, name: string, path: string) =>
      custom.createNamespacedCustomObject({ ...ROUTES, namespace, plural, body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace }, spec: { parentRefs: [{ name: 'waypoint', namespace: NS }], rules: [{ matches: [{ path: { type: 'Exact', value: path } }], filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: `${name}.example` } }] }] } } });
    await redirect(NS, 'gw-same', '/same');
    await redirect('other', 'gw-cross', '/cross');
    const agent = waypointAgent(wp.ports.listen, dial('web-v1'));
    try {
      await eventually(async () => (await accepted(NS, 'gw-same'))?.status === 'True', 'the same-namespace route is Accepted (Same is the default)');
      await eventually(async () => (await accepted('other', 'gw-cross'))?.reason === 'NotAllowedByListeners', 'the other-namespace route is NotAllowedByListeners');
      assert.equal((await accepted('other', 'gw-cross'))!.status, 'False');
      assert.equal((await send(agent, { path: '/same' })).status, 302, 'the same-namespace route applies');
      assert.notEqual((await send(agent, { path: '/cross' })).status, 302, 'the refused route is not used');
      // The listener admits namespaces labelled team=blue: the route attaches.
      await custom.patchNamespacedCustomObject({ ...ROUTES, plural: 'gateways', name: 'waypoint', body: [{ op: 'add', path: '/spec/listeners/0/allowedRoutes', value: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'blue' } } } } }] });
      await eventually(async () => (await accepted('other', 'gw-cross'))?.status === 'True', 'admitted by the selector');
      await eventually(async () => (await send(agent, { path: '/cross' })).status === 302, 'the admitted route is used');
    } finally {
      agent.destroy();
      await custom.deleteNamespacedCustomObject({ ...ROUTES, plural, name: 'gw-same' });
      await custom.deleteNamespacedCustomObject({ ...ROUTES, namespace: 'other', plural, name: 'gw-cross' });
    }
  });
});
