import type { Endpoint } from '../k8s/cluster-index.js';
import { admission, newCounters, retryAllowed } from './circuit-breaker.js';
import type { ConnectionPool, LoadBalancer, OutlierPolicy } from './destination-rule.js';
import { pickEndpoint } from './load-balancer.js';
import { endpointKey, healthyEndpoints, recordResult, sweep, type OutlierState, type TryResult } from './outlier-detection.js';

/**
 * The live side of a DestinationRule for one upstream cluster (host, subset,
 * port; docs/architecture.md §15): its counters, queue, outlier state and
 * round-robin cursor, kept across requests while the pure modules decide.
 * A changed rule takes effect on the next request (`update`); requests
 * already admitted finish under the limits they were admitted with.
 */
export interface ClusterPolicy {
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierPolicy;
  loadBalancer?: LoadBalancer;
}

/** One request's hold on the cluster, from admission to release. */
export interface Lease {
  pick(endpoints: readonly Endpoint[], header: (name: string) => string | undefined): Endpoint | undefined;
  report(endpoint: Endpoint, endpoints: readonly Endpoint[], result: TryResult): void;
  /** whether one more retry may start (maxRetries); counted until release */
  retry(): boolean;
  release(): void;
}

export interface UpstreamCluster {
  key: string;
  policy: ClusterPolicy;
  /** resolves with a lease, or undefined when the request overflows the pool (503 UO) */
  admit(): Promise<Lease | undefined>;
  /** ejections so far, for metrics and tests */
  ejected(nowMs: number): string[];
}

export interface ClusterClock {
  now(): number;
  random(): number;
  onEject(cluster: string, endpoint: string): void;
}

export function createUpstreamCluster(key: string, initial: ClusterPolicy, clock: ClusterClock): UpstreamCluster & { update(p: ClusterPolicy): void } {
  const counters = newCounters();
  const waiting: Array<() => void> = [];
  const outliers: OutlierState = new Map();
  const active = new Map<string, number>();
  let cursor = 0;
  let lastSweep = 0;
  const cluster = {
    key,
    policy: initial,
    update(p: ClusterPolicy): void {
      cluster.policy = p;
    },
    ejected: (nowMs: number): string[] => [...outliers].filter(([, h]) => h.ejectedUntilMs > nowMs).map(([k]) => k),
    async admit(): Promise<Lease | undefined> {
      const pool = cluster.policy.connectionPool;
      const a = pool === undefined ? 'run' : admission(counters, pool);
      if (a === 'overflow') return undefined;
      if (a === 'queue') {
        counters.pending++;
        // woken by a release that hands its slot over (active stays counted, pending already taken off)
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else counters.active++;
      let retries = 0;
      let released = false;
      return {
        pick(endpoints, header) {
          const now = clock.now();
          const od = cluster.policy.outlierDetection;
          if (od !== undefined && now - lastSweep >= od.intervalMs) {
            lastSweep = now;
            sweep(outliers, new Set(endpoints.map(endpointKey)), now);
          }
          const usable = od === undefined ? endpoints : healthyEndpoints(outliers, od, endpoints, now);
          const e = pickEndpoint(usable, cluster.policy.loadBalancer, { cursor: cursor++, random: clock.random, active: (x) => active.get(endpointKey(x)) ?? 0, header });
          if (e !== undefined) active.set(endpointKey(e), (active.get(endpointKey(e)) ?? 0) + 1);
          return e;
        },
        report(endpoint, endpoints, result) {
          const k = endpointKey(endpoint);
          const n = (active.get(k) ?? 1) - 1;
          if (n > 0) active.set(k, n);
          else active.delete(k);
          const od = cluster.policy.outlierDetection;
          if (od !== undefined && recordResult(outliers, od, endpoints, endpoint, result, clock.now())) clock.onEject(key, k);
        },
        retry() {
          const p = cluster.policy.connectionPool;
          if (p !== undefined && !retryAllowed(counters, p)) return false;
          counters.retries++;
          retries++;
          return true;
        },
        release() {
          if (released) return;
          released = true;
          counters.retries -= retries;
          // a freed connection goes to the oldest waiting request, else back to the pool
          const next = waiting.shift();
          if (next !== undefined) {
            counters.pending--;
            next();
          } else counters.active--;
        },
      };
    },
  };
  return cluster;
}
