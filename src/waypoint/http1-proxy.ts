import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Endpoint } from '../k8s/cluster-index.js';
import { beforeUpstream, OVERFLOW_BODY } from '../resilience/request-hooks.js';
import { tryResult } from '../resilience/outlier-detection.js';
import { planStep } from './plan-step.js';
import { applyHeaderModifier, type ConnectionFacts, type Forward, type Plan, type PlanRequest, type Snapshot } from './request-plan.js';
import { formatTraceparent, traceContext, type TraceContext } from './trace-context.js';
import { nextEndpoint } from './upstream.js';
import { DISCARD, UpstreamExchange, type HeadResult, type UpstreamHead } from './upstream-exchange.js';
import { originOf, type UpstreamPools } from './upstream-pool.js';

/**
 * HTTP/1.1 through the waypoint (docs/architecture.md §14):
 * keep-alive and chunked bodies both ways, `Upgrade` (WebSocket) passed
 * through, retries and timeouts from the route. Upstream connections come
 * from one keep-alive pool per endpoint (undici, src/waypoint/upstream-pool.ts).
 */

export interface RequestOutcome {
  source: ConnectionFacts['source'];
  destination: ConnectionFacts['destination'];
  plan: Plan;
  trace: TraceContext;
  method: string;
  path: string;
  authority: string;
  status: number;
  flags: string;
  upstream?: Endpoint;
  attempts: number;
  requestBytes: number;
  responseBytes: number;
  durationMs: number;
  grpcStatus?: string;
}

export interface Http1Deps {
  snapshot(): Snapshot;
  connection(socket: Socket): ConnectionFacts | undefined;
  pools: UpstreamPools;
  maxRetryBodyBytes: number;
  connectTimeoutMs: number;
  done(o: RequestOutcome): void;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) and those a proxy must not forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Without a route retry: a connection refused or reset before the request was sent is tried on another endpoint, twice (Istio's default attempts). */
const DEFAULT_CONNECT_RETRIES = 2;

function forwardHeaders(raw: IncomingHttpHeaders, keepUpgrade: boolean): Record<string, string | string[] | undefined> {
  const named = new Set((raw.connection ?? '').toLowerCase().split(',').map((s) => s.trim()));
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (keepUpgrade && (k === 'upgrade' || k === 'connection')) continue;
    if (HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  if (keepUpgrade && raw.upgrade !== undefined) {
    out.connection = 'Upgrade';
    out.upgrade = raw.upgrade;
  }
  return out;
}

export function headerGetter(raw: IncomingHttpHeaders): (name: string) => string | undefined {
  return (name) => {
    const v = raw[name];
    return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : v;
  };
}

function headerBytes(h: Record<string, unknown>): number {
  let n = 0;
  for (const [k, v] of Object.entries(h)) n += k.length + 4 + (Array.isArray(v) ? v.join(',').length : String(v ?? '').length);
  return n;
}

export function planInput(req: IncomingMessage): PlanRequest {
  const url = new URL(req.url ?? '/', 'http://waypoint');
  const header = headerGetter(req.headers);
  return { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, authority: req.headers.host ?? '', header, grpc: (header('content-type') ?? '').startsWith('application/grpc') };
}

/** The upstream request headers: the client's minus hop-by-hop, plus the plan's edits and the trace headers. */
export function upstreamHeaders(raw: IncomingHttpHeaders, plan: Forward, trace: TraceContext, keepUpgrade: boolean): Record<string, string | string[] | undefined> {
  const h = forwardHeaders(raw, keepUpgrade);
  applyHeaderModifier(h, plan.requestHeaders);
  // node:http's server answered the client's `expect: 100-continue` already, as Envoy does by default; undici refuses the header
  delete h.expect;
  if (plan.authority !== undefined) h.host = plan.authority;
  h['x-request-id'] = trace.requestId;
  h.traceparent = formatTraceparent(trace);
  return h;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined) return undefined;
  if (length === undefined) return Buffer.alloc(0);
  if (Number(length) > limit) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function createHttp1Handler(deps: Http1Deps) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const conn = deps.connection(req.socket);
    if (conn === undefined) {
      res.destroy();
      return;
    }
    const input = planInput(req);
    const trace = traceContext(input.header('traceparent'), input.header('x-request-id'));
    const plan = await planStep(deps.snapshot(), conn, input);
    const outcome: RequestOutcome = { source: conn.source, destination: conn.destination, plan, trace, method: input.method, path: input.path, authority: input.authority, status: 0, flags: '-', attempts: 0, requestBytes: headerBytes(req.headers), responseBytes: 0, durationMs: 0 };
    // Counted as it is read, but not read before a consumer wants it: undici takes a streamed
    // body only once its upstream connection is up, and what flowed out before would be lost.
    req.on('data', (c: Buffer) => (outcome.requestBytes += c.length)).pause();
    res.on('close', () => {
      outcome.durationMs = performance.now() - started;
      if (!res.writableFinished && outcome.flags === '-') outcome.flags = 'DC';
      deps.done(outcome);
    });
    if (plan.kind === 'respond') {
      outcome.status = plan.status;
      outcome.flags = plan.flags;
      const body = Buffer.from(plan.body);
      outcome.responseBytes = body.length;
      res.writeHead(plan.status, { 'content-type': 'text/plain', 'content-length': body.length, 'x-request-id': trace.requestId, ...plan.headers }).end(body);
      req.resume();
      return;
    }
    await forward(deps, req, res, plan, trace, outcome);
  };
}

async function forward(deps: Http1Deps, req: IncomingMessage, res: ServerResponse, plan: Forward, trace: TraceContext, outcome: RequestOutcome): Promise<void> {
  const retry = plan.retry;
  const method = req.method ?? 'GET';
  const retries = retry?.attempts ?? DEFAULT_CONNECT_RETRIES;
  // Retries need the body again: small bodies are kept, others stream once and are never retried.
  const body = retries > 0 ? await readBody(req, deps.maxRetryBodyBytes) : undefined;
  const headers = upstreamHeaders(req.headers, plan, trace, false);
  const deadline = plan.requestTimeoutMs === undefined ? undefined : Date.now() + plan.requestTimeoutMs;
  const path = plan.path !== undefined ? plan.path + (req.url?.includes('?') ? req.url.slice(req.url.indexOf('?')) : '') : (req.url ?? '/');
  if (plan.mirror !== undefined && body !== undefined) mirror(deps, plan.mirror, method, path, headers, body);
  const fail = (status: number, flags: string, text: string): void => {
    outcome.status = status;
    outcome.flags = flags;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), 'x-request-id': trace.requestId }).end(text);
  };
  const admitted = await beforeUpstream(plan, res, () => void (outcome.flags = 'DI'));
  if (admitted === 'overflow') return fail(503, 'UO', OVERFLOW_BODY);
  if (admitted === 'gone') return;
  const lease = admitted.lease;
  const header = headerGetter(req.headers);
  for (let attempt = 0; ; attempt++) {
    const endpoint = lease === undefined ? nextEndpoint(plan.endpoints) : lease.pick(plan.endpoints, header);
    if (endpoint === undefined) return fail(503, 'UH', 'no healthy upstream\n');
    outcome.upstream = endpoint;
    outcome.attempts = attempt + 1;
    const left = deadline === undefined ? undefined : deadline - Date.now();
    const perTry = Math.min(left ?? Infinity, plan.backendRequestTimeoutMs ?? Infinity);
    if (perTry <= 0) return fail(504, 'UT', 'upstream request timeout\n');
    if (attempt > 0) headers['x-envoy-attempt-count'] = String(attempt + 1);
    const exchange = new UpstreamExchange();
    const result = await tryOnce(deps, exchange, endpoint, method, path, headers, body ?? req, perTry, plan.cluster?.policy.connectionPool?.maxRequestsPerConnection ?? 0);
    lease?.report(endpoint, plan.endpoints, result.kind === 'error' ? tryResult(result) : { status: result.head.status });
    const canRetry = attempt < retries && body !== undefined && !res.destroyed;
    if (result.kind === 'error') {
      const sent = result.sent && !IDEMPOTENT.has(method);
      if (canRetry && !sent && (retry !== undefined || !result.sent) && (lease?.retry() ?? true)) {
        await sleep(backoff(retry?.backoffMs ?? 0, attempt));
        continue;
      }
      return result.timeout ? fail(504, 'UT', 'upstream request timeout\n') : fail(503, result.sent ? 'UC' : 'UF', 'upstream connect error or disconnect/reset before headers\n');
    }
    if (canRetry && retry !== undefined && retry.codes.includes(result.head.status) && IDEMPOTENT.has(method) && (lease?.retry() ?? true)) {
      exchange.attach(DISCARD);
      await sleep(backoff(retry.backoffMs, attempt));
      continue;
    }
    return relay(exchange, result.head, res, plan, trace, outcome, deadline);
  }
}

/**
 * RequestMirror: a copy of the request to the mirror backend, fire and forget (its answer
 * is dropped), with `-shadow` appended to the host as Envoy does. Only requests whose body
 * was kept (see readBody) are mirrored; a streamed body is sent once, to the real backend.
 */
function mirror(deps: Http1Deps, endpoints: readonly Endpoint[], method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer): void {
  const ep = nextEndpoint(endpoints);
  if (ep === undefined) return;
  const host = String(headers.host ?? '');
  const copy = new UpstreamExchange();
  deps.pools.dispatcher(0).dispatch({ origin: originOf(ep), method, path, headers: { ...headers, host: host.replace(/^([^:]*)/, '$1-shadow') }, body, headersTimeout: 10_000, bodyTimeout: 10_000 }, copy);
  copy.attach(DISCARD);
}

/** Exponential backoff from the route's base, with jitter, as Envoy: base * 2^n, randomized up to that. */
function backoff(baseMs: number, attempt: number): number {
  if (baseMs <= 0) return 0;
  return Math.round(Math.random() * baseMs * 2 ** attempt);
}

/** One attempt; resolves at the upstream's response head, an error, or the per-try timeout. */
function tryOnce(deps: Http1Deps, exchange: UpstreamExchange, ep: Endpoint, method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer | IncomingMessage, timeoutMs: number, maxRequestsPerConnection: number): Promise<HeadResult> {
  deps.pools.dispatcher(maxRequestsPerConnection).dispatch({ origin: originOf(ep), method, path, headers, body: Buffer.isBuffer(body) && body.length === 0 ? null : body }, exchange);
  if (!Number.isFinite(timeoutMs)) return exchange.head;
  // The per-try timer stops at the response headers; the request timeout covers the body (relay).
  const timer = setTimeout(() => exchange.timeout(), timeoutMs);
  return exchange.head.finally(() => clearTimeout(timer));
}

function relay(exchange: UpstreamExchange, head: UpstreamHead, res: ServerResponse, plan: Forward, trace: TraceContext, outcome: RequestOutcome, deadline: number | undefined): void {
  // the client left while the upstream answered: its 'close' has passed, so nothing would ever release the upstream connection
  if (res.destroyed) return exchange.abort();
  const h = forwardHeaders(head.headers, false);
  if (plan.responseHeaders) applyHeaderModifier(h, plan.responseHeaders);
  h['x-request-id'] = trace.requestId;
  outcome.status = head.status;
  outcome.responseBytes += headerBytes(h);
  // keep the upstream's framing: a known length stays, otherwise node chunks it
  res.writeHead(outcome.status, head.statusMessage, h as OutgoingHttpHeaders);
  let complete = false;
  const timer = deadline === undefined ? undefined : setTimeout(() => {
    outcome.flags = 'UT';
    exchange.abort();
    res.destroy();
  }, Math.max(0, deadline - Date.now()));
  res.on('close', () => {
    clearTimeout(timer);
    if (!complete) exchange.abort();
  });
  exchange.attach({
    data: (c, resume) => {
      outcome.responseBytes += c.length;
      if (res.write(c)) return true;
      res.once('drain', resume);
      return false;
    },
    end: (trailers) => {
      complete = true;
      clearTimeout(timer);
      if (Object.keys(trailers).length > 0) res.addTrailers(trailers as OutgoingHttpHeaders);
      res.end();
    },
    error: () => {
      clearTimeout(timer);
      if (outcome.flags === '-') outcome.flags = 'UC';
      res.destroy();
    },
  });
}
