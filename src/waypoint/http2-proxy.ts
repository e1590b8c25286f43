import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type Http2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Endpoint } from '../k8s/cluster-index.js';
import type { RequestOutcome } from './http1-proxy.js';
import { tryResult } from '../resilience/outlier-detection.js';
import { beforeUpstream, OVERFLOW_BODY } from '../resilience/request-hooks.js';
import { planStep } from './plan-step.js';
import { applyHeaderModifier, type ConnectionFacts, type Snapshot } from './request-plan.js';
import { formatTraceparent, traceContext } from './trace-context.js';
import { nextEndpoint } from './upstream.js';

/**
 * HTTP/2 with prior knowledge (h2c) and gRPC through the waypoint: each
 * stream is planned like an HTTP/1.1 request and forwarded on a pooled
 * HTTP/2 session to the chosen endpoint; response headers, data and
 * trailers (grpc-status) are relayed as they arrive. Local answers to gRPC
 * requests are trailers-only with the grpc-status of the HTTP code.
 */
export interface Http2Deps {
  snapshot(): Snapshot;
  /** by session: a session's `socket` is a proxy object, not the socket the listener accepted */
  connection(session: Http2Session): ConnectionFacts | undefined;
  connectTimeoutMs: number;
  done(o: RequestOutcome): void;
}

const sessions = new Map<string, ClientHttp2Session>();
/** Streams each upstream session has carried: for the DestinationRule's maxRequestsPerConnection. */
const streamsOn = new WeakMap<ClientHttp2Session, number>();

/** One session per endpoint, reused until it closes, is refused (GOAWAY) or is retired. */
function upstreamSession(ep: Endpoint): ClientHttp2Session {
  const key = `${ep.ip}|${ep.port}`;
  const open = sessions.get(key);
  if (open !== undefined && !open.closed && !open.destroyed) return open;
  const host = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip;
  const session = connect(`http://${host}:${ep.port}`);
  const drop = (): void => {
    if (sessions.get(key) === session) sessions.delete(key);
  };
  session.on('close', drop);
  session.on('goaway', drop);
  session.on('error', drop);
  // an idle session does not keep the process alive
  session.unref();
  sessions.set(key, session);
  return session;
}

/**
 * A stream to the endpoint on its pooled session. The stream that reaches
 * `maxRequestsPerConnection` (0: unlimited; read per request, so a changed
 * rule applies to the next one) retires its session: it leaves the pool at
 * once and is closed gracefully (node's close() sends GOAWAY and lets the open
 * streams finish), so the next stream opens a new session — Envoy's
 * max_requests_per_connection on HTTP/2 upstreams.
 */
export function upstreamStream(ep: Endpoint, headers: OutgoingHttpHeaders, maxRequestsPerConnection: number): ClientHttp2Stream {
  const session = upstreamSession(ep);
  const stream = session.request(headers, { endStream: false });
  const n = (streamsOn.get(session) ?? 0) + 1;
  streamsOn.set(session, n);
  if (maxRequestsPerConnection > 0 && n >= maxRequestsPerConnection) {
    const key = `${ep.ip}|${ep.port}`;
    if (sessions.get(key) === session) sessions.delete(key);
    // Not at once: nghttp2 sends a GOAWAY ahead of HEADERS still queued and then refuses to
    // start those streams. Once this stream has its answer (or ended) every stream of the
    // session is on the wire; close() then waits for those still open.
    const retire = (): void => void session.close();
    stream.once('response', retire);
    stream.once('close', retire);
  }
  return stream;
}

export function closeUpstreamSessions(): void {
  for (const s of sessions.values()) s.close();
  sessions.clear();
}

/** gRPC's mapping of HTTP status to status code (grpc/doc/http-grpc-status-mapping.md). */
const GRPC_FOR_HTTP: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 4 };
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

const header = (h: IncomingHttpHeaders) => (name: string): string | undefined => {
  const v = h[name];
  return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : String(v);
};

export function createHttp2StreamHandler(deps: Http2Deps) {
  return async (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> => {
    const started = performance.now();
    const conn = stream.session === undefined ? undefined : deps.connection(stream.session);
    if (conn === undefined) return void stream.close(constants.NGHTTP2_REFUSED_STREAM);
    stream.on('error', () => undefined);
    const get = header(headers);
    const url = new URL(get(':path') ?? '/', 'http://waypoint');
    const grpc = (get('content-type') ?? '').startsWith('application/grpc');
    const input = { method: get(':method') ?? 'GET', path: url.pathname, query: url.searchParams, authority: get(':authority') ?? get('host') ?? '', header: get, grpc };
    const trace = traceContext(get('traceparent'), get('x-request-id'));
    const plan = await planStep(deps.snapshot(), conn, input);
    const outcome: RequestOutcome = { source: conn.source, destination: conn.destination, plan, trace, method: input.method, path: input.path, authority: input.authority, status: 0, flags: '-', attempts: 1, requestBytes: 0, responseBytes: 0, durationMs: 0 };
    let grpcStatus: string | undefined;
    stream.on('close', () => {
      outcome.durationMs = performance.now() - started;
      if (grpcStatus !== undefined) outcome.grpcStatus = grpcStatus;
      deps.done(outcome);
    });
    stream.on('data', (c: Buffer) => (outcome.requestBytes += c.length));
    const local = (status: number, body: string, flags: string, extra: Record<string, string> = {}): void => {
      outcome.status = status;
      outcome.flags = flags;
      if (stream.destroyed || stream.headersSent) return void stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      if (grpc) {
        grpcStatus = extra['grpc-status'] ?? String(GRPC_FOR_HTTP[status] ?? 2);
        outcome.status = 200;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': grpcStatus, 'grpc-message': encodeURIComponent(body.trim()), 'x-request-id': trace.requestId }, { endStream: true });
      } else {
        stream.respond({ ':status': status, 'content-type': 'text/plain', 'x-request-id': trace.requestId, ...extra });
        stream.end(body);
      }
      stream.resume();
    };
    if (plan.kind === 'respond') return local(plan.status, plan.body, plan.flags, plan.headers);
    const admitted = await beforeUpstream(plan, stream, () => void (outcome.flags = 'DI'));
    if (admitted === 'overflow') return local(503, OVERFLOW_BODY, 'UO');
    if (admitted === 'gone') return;
    const lease = admitted.lease;
    const endpoint = lease === undefined ? nextEndpoint(plan.endpoints) : lease.pick(plan.endpoints, get);
    if (endpoint === undefined) return local(503, 'no healthy upstream\n', 'UH');
    const report = (r: Parameters<NonNullable<typeof lease>['report']>[2]): void => lease?.report(endpoint, plan.endpoints, r);
    outcome.upstream = endpoint;
    const out: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) if (!HOP.has(k) && !k.startsWith(':') && v !== undefined) out[k] = v;
    applyHeaderModifier(out as Record<string, string | string[] | undefined>, plan.requestHeaders);
    out[':method'] = input.method;
    out[':path'] = (plan.path ?? url.pathname) + url.search;
    out[':authority'] = plan.authority ?? input.authority;
    out[':scheme'] = 'http';
    out['x-request-id'] = trace.requestId;
    out.traceparent = formatTraceparent(trace);
    let up: ClientHttp2Stream;
    try {
      up = upstreamStream(endpoint, out, plan.cluster?.policy.connectionPool?.maxRequestsPerConnection ?? 0);
    } catch {
      return local(503, 'upstream connect error\n', 'UF');
    }
    const timeoutMs = Math.min(plan.requestTimeoutMs ?? Infinity, plan.backendRequestTimeoutMs ?? Infinity);
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => {
          up.close(constants.NGHTTP2_CANCEL);
          local(504, 'upstream request timeout\n', 'UT');
        }, timeoutMs)
      : undefined;
    let trailers: OutgoingHttpHeaders | undefined;
    up.on('response', (h, flags) => {
      const resHeaders: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(h)) if (!HOP.has(k) && v !== undefined) resHeaders[k] = v;
      if (plan.responseHeaders) applyHeaderModifier(resHeaders as Record<string, string | string[] | undefined>, plan.responseHeaders);
      resHeaders['x-request-id'] = trace.requestId;
      outcome.status = Number(h[':status'] ?? 502);
      report({ status: outcome.status });
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      if (stream.destroyed) return;
      const ended = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      stream.respond(resHeaders, { endStream: ended, waitForTrailers: !ended });
    });
    up.on('trailers', (t) => {
      trailers = {};
      for (const [k, v] of Object.entries(t)) if (!k.startsWith(':') && v !== undefined) trailers[k] = v;
      if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
    });
    stream.on('wantTrailers', () => {
      if (trailers !== undefined && Object.keys(trailers).length > 0) stream.sendTrailers(trailers);
      else stream.close();
    });
    up.on('data', (c: Buffer) => {
      outcome.responseBytes += c.length;
      // backpressure: a slow client pauses the upstream stream instead of queueing in memory
      if (!stream.destroyed && !stream.write(c)) {
        up.pause();
        stream.once('drain', () => up.resume());
      }
    });
    up.on('end', () => {
      clearTimeout(timer);
      if (!stream.destroyed && stream.headersSent) stream.end();
    });
    up.on('error', () => {
      clearTimeout(timer);
      if (outcome.status === 0) report(tryResult({ sent: true, timeout: false }));
      if (!stream.headersSent) local(503, 'upstream connect error or disconnect/reset before headers\n', outcome.status === 0 ? 'UF' : 'UC');
      else stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    });
    up.on('close', () => {
      clearTimeout(timer);
      if (!stream.headersSent && !stream.destroyed && outcome.status === 0) local(503, 'upstream reset before headers\n', 'UC');
    });
    stream.on('close', () => {
      if (!up.closed) up.close(constants.NGHTTP2_CANCEL);
    });
    stream.pipe(up);
  };
}
