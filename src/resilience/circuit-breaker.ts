import type { ConnectionPool } from './destination-rule.js';

/**
 * Connection-pool admission for one upstream cluster (a host/subset/port),
 * as Envoy's circuit breakers count it (docs/architecture.md §15):
 * HTTP/1.1 carries one request per connection at a time, so a request runs
 * when fewer than `maxConnections` (and `http2MaxRequests`, Envoy's
 * max_requests) are active; otherwise it waits while fewer than
 * `http1MaxPendingRequests` wait; beyond that it overflows (503, UO).
 */
export interface PoolCounters {
  active: number;
  pending: number;
  retries: number;
}

export type Admission = 'run' | 'queue' | 'overflow';

export function newCounters(): PoolCounters {
  return { active: 0, pending: 0, retries: 0 };
}

export function admission(c: PoolCounters, pool: ConnectionPool): Admission {
  if (c.active < pool.maxConnections && c.active < pool.http2MaxRequests) return 'run';
  if (c.pending < pool.http1MaxPendingRequests) return 'queue';
  return 'overflow';
}

/** Whether one more retry may start now (Istio's maxRetries: concurrent retries to the cluster). */
export function retryAllowed(c: PoolCounters, pool: ConnectionPool): boolean {
  return c.retries < pool.maxRetries;
}
