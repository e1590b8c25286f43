import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { tryResult } from '../resilience/outlier-detection.js';
import { beforeUpstream, OVERFLOW_BODY } from '../resilience/request-hooks.js';
import { headerGetter, planInput, upstreamHeaders, type Http1Deps, type RequestOutcome } from './http1-proxy.js';
import { planStep } from './plan-step.js';
import { traceContext } from './trace-context.js';
import { nextEndpoint } from './upstream.js';

/**
 * `Upgrade` requests (WebSocket): authorized, routed and put through the
 * resilience step like any request (docs/architecture.md §15: the rate
 * limit, a fault abort or delay, the DestinationRule's pool, which holds the
 * upgraded connection's slot until it closes, as Envoy counts an upgraded
 * stream as an active request), then the upstream's 101 and both byte
 * streams are passed through as they are. A refusal or an upstream that does
 * not switch gets an HTTP answer.
 */
function rawResponse(socket: Socket, status: number, reason: string, headers: Record<string, string | string[] | number | undefined>, body: Buffer = Buffer.alloc(0)): void {
  const lines = [`HTTP/1.1 ${status} ${reason}`];
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
  socket.end(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), body]));
}

export function createUpgradeHandler(deps: Http1Deps) {
  return async (req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> => {
    const started = performance.now();
    const conn = deps.connection(socket);
    if (conn === undefined) return void socket.destroy();
    socket.on('error', () => socket.destroy());
    const input = planInput(req);
    const trace = traceContext(headerGetter(req.headers)('traceparent'), headerGetter(req.headers)('x-request-id'));
    const plan = await planStep(deps.snapshot(), conn, input);
    const outcome: RequestOutcome = { source: conn.source, destination: conn.destination, plan, trace, method: input.method, path: input.path, authority: input.authority, status: 0, flags: '-', attempts: 1, requestBytes: head.length, responseBytes: 0, durationMs: 0 };
    socket.once('close', () => {
      outcome.durationMs = performance.now() - started;
      deps.done(outcome);
    });
    if (plan.kind === 'respond') {
      outcome.status = plan.status;
      outcome.flags = plan.flags;
      const body = Buffer.from(plan.body);
      return rawResponse(socket, plan.status, plan.status === 403 ? 'Forbidden' : 'Error', { 'content-type': 'text/plain', 'content-length': body.length, connection: 'close', ...plan.headers }, body);
    }
    const unavailable = (flags: string, body = ''): void => {
      outcome.status = 503;
      outcome.flags = flags;
      rawResponse(socket, 503, 'Service Unavailable', { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' }, Buffer.from(body));
    };
    const admitted = await beforeUpstream(plan, socket, () => void (outcome.flags = 'DI'));
    if (admitted === 'overflow') return unavailable('UO', OVERFLOW_BODY);
    if (admitted === 'gone') return;
    const lease = admitted.lease;
    const endpoint = lease === undefined ? nextEndpoint(plan.endpoints) : lease.pick(plan.endpoints, input.header);
    if (endpoint === undefined) return unavailable('UH', 'no healthy upstream\n');
    outcome.upstream = endpoint;
    // A dedicated connection: an upgraded one never returns to the pool.
    const up = httpRequest({ host: endpoint.ip, port: endpoint.port, method: req.method, path: plan.path ?? req.url, headers: upstreamHeaders(req.headers, plan, trace, true), setHost: false, agent: false, timeout: deps.connectTimeoutMs });
    up.on('upgrade', (res, upSocket, upHead) => {
      outcome.status = res.statusCode ?? 101;
      lease?.report(endpoint, plan.endpoints, { status: outcome.status });
      writeSwitchingProtocols(socket, res);
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      upSocket.on('data', (c: Buffer) => (outcome.responseBytes += c.length));
      socket.on('data', (c: Buffer) => (outcome.requestBytes += c.length));
      upSocket.pipe(socket).pipe(upSocket);
      upSocket.on('error', () => socket.destroy());
      upSocket.on('close', () => socket.destroy());
      socket.on('close', () => upSocket.destroy());
    });
    up.on('response', (res) => {
      outcome.status = res.statusCode ?? 502;
      lease?.report(endpoint, plan.endpoints, { status: outcome.status });
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        rawResponse(socket, outcome.status, res.statusMessage ?? '', { ...res.headers, 'content-length': body.length, 'transfer-encoding': undefined, connection: 'close' }, body);
      });
    });
    up.on('timeout', () => up.destroy());
    let connected = false;
    up.once('socket', (s: Socket) => (s.connecting ? s.once('connect', () => void (connected = true)) : (connected = true)));
    up.on('error', () => {
      if (outcome.status !== 0) return;
      lease?.report(endpoint, plan.endpoints, tryResult({ sent: connected, timeout: false }));
      if (!socket.destroyed) unavailable('UF');
    });
    up.end();
  };
}

/** Writes the upstream's 101 status line and headers as they came. */
function writeSwitchingProtocols(socket: Socket, res: IncomingMessage): void {
  const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? 'Switching Protocols'}`];
  for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
}
