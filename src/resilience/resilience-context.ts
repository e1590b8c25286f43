import type { ResilienceTable } from './resilience-table.js';
import type { Bucket } from './token-bucket.js';
import type { ClusterClock, ClusterPolicy, UpstreamCluster } from './upstream-cluster.js';

/**
 * What the request path keeps for the resilience policies
 * (docs/architecture.md §15): the table in force, and the live state it
 * drives (token buckets per rate-limit target, upstream clusters per
 * DestinationRule host/subset/port), kept across table rebuilds.
 */
export interface Resilience {
  table(): ResilienceTable;
  clusterDomain: string;
  buckets: Map<string, Bucket>;
  clusters: Map<string, UpstreamCluster & { update(p: ClusterPolicy): void }>;
  clock: ClusterClock;
}

export function createResilience(table: () => ResilienceTable, clusterDomain: string, clock: ClusterClock): Resilience {
  return { table, clusterDomain, buckets: new Map(), clusters: new Map(), clock };
}
