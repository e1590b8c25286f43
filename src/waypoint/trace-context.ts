import { randomFillSync, randomUUID } from 'node:crypto';

/**
 * W3C Trace Context for one request through the waypoint: the incoming
 * `traceparent` is continued (same trace id, this hop's span as the parent
 * of the upstream request) or a trace is started; `x-request-id` is kept
 * when it is sane and generated when missing, as Envoy does.
 */
export interface TraceContext {
  traceId: string;
  /** this hop's span: the parent id sent upstream */
  spanId: string;
  /** the caller's span, when the request carried one */
  parentSpanId?: string;
  sampled: boolean;
  requestId: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Span and trace ids are cut from one pool of random bytes refilled 4 KiB at a time: a
 * randomBytes() call per id (two per request) was ~4 % of the waypoint's CPU in a perf
 * profile under the waypoint bench's load (README, Performance). Still the CSPRNG.
 */
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;

function randomHex(bytes: number): string {
  if (poolAt + bytes > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  poolAt += bytes;
  return POOL.toString('hex', poolAt - bytes, poolAt);
}

export function traceContext(traceparent: string | undefined, requestId: string | undefined): TraceContext {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent.trim());
  const valid = m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!);
  const spanId = randomHex(8);
  const rid = requestId !== undefined && REQUEST_ID.test(requestId) ? requestId : randomUUID();
  if (!valid) return { traceId: randomHex(16), spanId, sampled: true, requestId: rid };
  return { traceId: m[1]!, spanId, parentSpanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1, requestId: rid };
}

export function formatTraceparent(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.sampled ? '01' : '00'}`;
}
