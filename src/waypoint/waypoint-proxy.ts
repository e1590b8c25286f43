import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server, Socket } from 'node:net';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { KubeApi } from '../k8s/lean/api-client.js';
import { loadApiCredentials } from '../k8s/lean/credentials.js';
import { leanWatcher } from '../k8s/lean/watcher.js';
import { sendJson } from '../net/respond.js';
import { serveEndpoints } from '../telemetry/http-endpoints.js';
import type { WaypointConfig } from './config.js';
import { createHttp1Handler, type RequestOutcome } from './http1-proxy.js';
import { closeUpstreamSessions, createHttp2StreamHandler } from './http2-proxy.js';
import { authorizeL7 } from './l7-authorization.js';
import { forwardTcp, startInboundListener } from './inbound-listener.js';
import type { ProxyV2Header } from './proxy-protocol.js';
import { planRequest, type ConnectionFacts, type Snapshot } from './request-plan.js';
import { createUpgradeHandler } from './upgrade-proxy.js';
import { waypointMetrics } from './waypoint-metrics.js';
import { startWaypointState } from './waypoint-state.js';
import { createResilience } from '../resilience/resilience-context.js';
import { startResilienceState } from '../resilience/resilience-state.js';
import { nextEndpoint } from './upstream.js';
import { upstreamPools } from './upstream-pool.js';

/**
 * `warren waypoint-proxy`: the process in a waypoint pod (docs/architecture.md
 * §14). Streams arrive from this node's agent on :15088 behind a
 * PROXY v2 header; HTTP is authenticated, authorized, routed and forwarded
 * to a ready endpoint; other streams go on as TCP. Metrics on :15020
 * (/metrics, /debug/routes), readiness on :15021 (/healthz/ready).
 */
export interface RunningWaypoint {
  ports: { listen: number; admin: number; readiness: number };
  stop(): Promise<void>;
}

export async function startWaypointProxy(config: WaypointConfig): Promise<RunningWaypoint> {
  const log = pino({ level: config.logLevel, base: { component: 'warren-waypoint', waypoint: `${config.namespace}/${config.name}` } });
  const logFn = (msg: string, fields: Record<string, unknown>): void => log.info(fields, msg);
  // The node agent's lean client: @kubernetes/client-node would cost the waypoint >= 75 MiB of RSS (docs/architecture.md §4).
  const api = new KubeApi(loadApiCredentials(config.kubeconfig));
  const watch = leanWatcher(api, logFn);
  const gateway = { namespace: config.namespace, name: config.name };
  const state = startWaypointState(api, watch, gateway, logFn);
  const registry = new Registry();
  const metrics = waypointMetrics(registry, () => state.index(), config.clusterDomain);
  // Loaded only when asked for: the OpenTelemetry SDK adds ~28 MiB of RSS to the process.
  const spans = config.otlpEndpoint === undefined ? undefined : (await import('./span-export.js')).startSpanExporter(config.otlpEndpoint, `${config.name}.${config.namespace}`);
  const connections = new WeakMap<Socket, ConnectionFacts>();
  const resilienceState = startResilienceState(api, watch, gateway, config.clusterDomain, { routes: () => state.routes(), index: () => state.index() }, logFn);
  const ejections = new Counter({ name: 'warren_waypoint_outlier_ejections_total', help: 'Endpoints ejected by a DestinationRule outlierDetection, by upstream cluster', labelNames: ['cluster'], registers: [registry] });
  const resilience = createResilience(() => resilienceState.table(), config.clusterDomain, {
    now: Date.now,
    random: Math.random,
    onEject: (cluster, endpoint) => {
      ejections.labels(cluster).inc();
      log.warn({ cluster, endpoint }, 'endpoint ejected (outlier detection)');
    },
  });
  const snapshot = (): Snapshot => ({ index: state.index(), routes: state.routes(), authorizationPolicies: state.authorizationPolicies(), requestAuthentications: state.requestAuthentications(), gateway, resilience });
  const accessLog = config.accessLogLevel === 'off' ? undefined : log[config.accessLogLevel].bind(log);

  const done = (o: RequestOutcome): void => {
    const conn = o.plan.service;
    const grpc = o.grpcStatus !== undefined;
    metrics.record({
      source: o.source,
      destination: { ip: o.destination.ip, ...(conn ? { service: { namespace: conn.namespace, name: conn.name } } : {}) },
      ...(o.upstream ? { upstreamIp: o.upstream.ip } : {}),
      protocol: grpc ? 'grpc' : 'http',
      status: o.status,
      ...(o.grpcStatus !== undefined ? { grpcStatus: o.grpcStatus } : {}),
      flags: o.flags,
      durationMs: o.durationMs,
      requestBytes: o.requestBytes,
      responseBytes: o.responseBytes,
      attempts: o.attempts,
    });
    spans?.record(o);
    accessLog?.(
      {
        method: o.method,
        path: o.path,
        authority: o.authority,
        status: o.status,
        ...(o.grpcStatus !== undefined ? { grpc_status: o.grpcStatus } : {}),
        flags: o.flags,
        duration_ms: Math.round(o.durationMs * 1000) / 1000,
        upstream: o.upstream ? `${o.upstream.ip}:${o.upstream.port}` : undefined,
        attempts: o.attempts,
        route: o.plan.route,
        service: conn ? `${conn.namespace}/${conn.name}` : undefined,
        decision: o.plan.decision.allow ? 'allow' : 'deny',
        policy: o.plan.decision.policy,
        reason: o.plan.decision.reason,
        principal: o.source.principal,
        request_principal: o.plan.auth?.principal,
        trace_id: o.trace.traceId,
        request_id: o.trace.requestId,
      },
      'request',
    );
  };
  const connectionOf = (socket: Socket): ConnectionFacts | undefined => connections.get(socket);
  const pools = upstreamPools(config.connectTimeout);
  const h1deps = { snapshot, connection: connectionOf, pools, maxRetryBodyBytes: config.maxRetryBodyBytes, connectTimeoutMs: config.connectTimeout, done };
  const onRequest = createHttp1Handler(h1deps);
  const onUpgrade = createUpgradeHandler(h1deps);
  const sessions = new WeakMap<Http2Session, ConnectionFacts>();
  const onStream = createHttp2StreamHandler({ snapshot, connection: (session) => sessions.get(session), connectTimeoutMs: config.connectTimeout, done });
  // A request that fails in an unforeseen way costs its own connection, never the process.
  const contain = (what: string, destroy: () => void) => (err: unknown): void => {
    log.error({ err: (err as Error).message, what }, 'request failed in the waypoint');
    destroy();
  };
  const http1 = createHttpServer({ maxHeaderSize: config.maxHeaderBytes, requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 65_000 }, (req, res) => void onRequest(req, res).catch(contain('http1', () => res.destroy())));
  http1.on('upgrade', (req, socket: Socket, head: Buffer) => void onUpgrade(req, socket, head).catch(contain('upgrade', () => socket.destroy())));
  http1.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return void socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    socket.end(tooLarge ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  const http2 = createHttp2Server({ maxHeaderListPairs: 256, maxSessionMemory: 16, settings: { maxHeaderListSize: config.maxHeaderBytes } });
  http2.on('stream', (stream, headers) => void onStream(stream as ServerHttp2Stream, headers).catch(contain('http2', () => stream.destroy())));
  http2.on('sessionError', () => undefined);

  const tcp = (socket: Socket, header: ProxyV2Header): void => {
    const index = state.index();
    const service = index.serviceByVip(header.destination.address, header.destination.port);
    const facts = connections.get(socket)!;
    const decision = authorizeL7(state.authorizationPolicies(), gateway, {
      source: facts.source,
      destination: { ip: header.destination.address, port: header.destination.port, namespace: service?.namespace ?? '', ...(service ? { service: { namespace: service.namespace, name: service.name } } : {}) },
    });
    const target = service === undefined ? { ip: header.destination.address, port: header.destination.port } : nextEndpoint(service.endpoints);
    if (!decision.allow || target === undefined) {
      metrics.tcp.inc({ outcome: decision.allow ? 'no_endpoint' : 'denied' });
      accessLog?.({ protocol: 'tcp', service: service ? `${service.namespace}/${service.name}` : undefined, decision: decision.allow ? 'allow' : 'deny', policy: decision.policy, reason: decision.reason }, 'connection');
      return void socket.destroy();
    }
    forwardTcp(socket, target, config.connectTimeout, (outcome) => {
      metrics.tcp.inc({ outcome });
      accessLog?.({ protocol: 'tcp', upstream: `${target.ip}:${target.port}`, service: service ? `${service.namespace}/${service.name}` : undefined, outcome, principal: facts.source.principal }, 'connection');
    });
  };

  await state.synced;
  await resilienceState.synced;
  const inbound: Server = await startInboundListener(config.listenAddress, config.listenPort, {
    trustedSources: config.trustedSources,
    detectionTimeoutMs: config.protocolDetectionTimeout,
    accepted: (socket, header) =>
      connections.set(socket, {
        source: { ip: header.source.address, port: header.source.port, ...(header.clientSpiffeId ? { principal: header.clientSpiffeId } : {}) },
        destination: { ip: header.destination.address, port: header.destination.port },
      }),
    refused: (reason) => {
      metrics.refused.inc({ reason });
      log.warn({ reason }, 'connection refused on the PROXY port');
    },
    http1: (socket) => {
      http1.emit('connection', socket);
      // node:http reads the bytes sniffing put back only once the socket flows again
      socket.resume();
    },
    http2: (socket) => {
      // The server makes the session synchronously inside 'connection'; node:http2 then reads
      // the bytes sniffing put back itself (so the socket stays paused here).
      const bind = (session: Http2Session): void => void sessions.set(session, connections.get(socket)!);
      http2.once('session', bind);
      http2.emit('connection', socket);
      http2.removeListener('session', bind);
    },
    tcp,
  });
  let ready = true;
  const admin = await serveEndpoints(`${config.adminAddress}:${config.adminPort}`, {
    '/metrics': async (_req, res) => void res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics()),
    '/debug/routes': (_req, res) => sendJson(res, 200, { waypoint: `${config.namespace}/${config.name}`, routes: state.routes().describe(), resilience: resilienceState.table().describe() }),
    '/debug/policies': (_req, res) =>
      sendJson(res, 200, {
        authorizationPolicies: state.authorizationPolicies().map((t) => ({ policy: `${t.policy.namespace}/${t.policy.name}`, action: t.policy.action, targets: t.targets, rules: t.policy.rules.length, ...(t.policy.invalid ? { invalid: t.policy.invalid } : {}) })),
        requestAuthentications: state.requestAuthentications().map((r) => ({ policy: `${r.namespace}/${r.name}`, targets: r.targets, issuers: r.rules.map((x) => x.issuer), ...(r.invalid ? { invalid: true } : {}) })),
      }),
    // L7 explain: what the waypoint would do with a request, without sending one.
    '/debug/explain': async (req, res) => {
      const q = new URL(req.url ?? '/', 'http://admin').searchParams;
      const [ns, name] = (q.get('service') ?? '').split('/');
      const port = Number(q.get('port') ?? '80');
      const svc = state.index().services().find((e) => e.namespace === ns && e.name === name && e.port === port);
      if (svc === undefined) return sendJson(res, 404, { message: `service=NS/NAME and port=N must name a Service port the waypoint knows (got ${q.get('service')}:${port})` });
      const headers = new Map(q.getAll('header').map((h) => [h.slice(0, h.indexOf(':')).trim().toLowerCase(), h.slice(h.indexOf(':') + 1).trim()]));
      const principal = q.get('principal');
      const conn: ConnectionFacts = { source: { ip: q.get('source-ip') ?? '0.0.0.0', port: 0, ...(principal ? { principal } : {}) }, destination: { ip: svc.vips[0]!, port } };
      const path = q.get('path') ?? '/';
      const url = new URL(path, 'http://x');
      const plan = await planRequest(snapshot(), conn, { method: q.get('method') ?? 'GET', path: url.pathname, query: url.searchParams, authority: headers.get('host') ?? `${name}.${ns}`, header: (h) => headers.get(h), grpc: (headers.get('content-type') ?? '').startsWith('application/grpc') });
      sendJson(res, 200, {
        decision: plan.decision,
        ...(plan.kind === 'respond' ? { response: { status: plan.status, flags: plan.flags } } : { forward: { service: plan.service ? `${plan.service.namespace}/${plan.service.name}:${plan.service.port}` : undefined, endpoints: plan.endpoints.map((e) => `${e.ip}:${e.port}`) } }),
        ...(plan.route ? { route: plan.route } : {}),
      });
    },
    '/ready': (_req, res) => void res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'stopping\n'),
  });
  const readiness = await serveEndpoints(`${config.adminAddress}:${config.readinessPort}`, {
    '/healthz/ready': (_req, res) => void res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'stopping\n'),
  });
  const portOf = (s: Server): number => (s.address() as { port: number }).port;
  log.info({ listen: portOf(inbound), admin: portOf(admin), readiness: portOf(readiness) }, 'waypoint ready');
  return {
    ports: { listen: portOf(inbound), admin: portOf(admin), readiness: portOf(readiness) },
    async stop() {
      ready = false;
      const close = (s: { close(cb: () => void): unknown }): Promise<void> => new Promise((resolve) => void s.close(() => resolve()));
      inbound.close();
      http1.closeAllConnections();
      await Promise.all([close(admin), close(readiness), close(http1), close(http2)]);
      await pools.close();
      closeUpstreamSessions();
      await spans?.shutdown();
      await Promise.all([state.stop(), resilienceState.stop()]);
      api.close();
    },
  };
}

/** Runs until SIGTERM/SIGINT. */
export async function runWaypointProxy(config: WaypointConfig): Promise<number> {
  const running = await startWaypointProxy(config);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await running.stop();
  return 0;
}
