import { Counter, Histogram, type Registry } from 'prom-client';
import type { ClusterIndex, Workload } from '../k8s/cluster-index.js';
import { ISTIO_TCP_LABELS, istioTcpLabels } from '../telemetry/istio-labels.js';

/** Istio's HTTP metric labels: the TCP set plus the response's code and gRPC status. */
export const ISTIO_HTTP_LABELS = [...ISTIO_TCP_LABELS, 'response_code', 'grpc_response_status'] as const;
/** Istio's default buckets for istio_request_duration_milliseconds. */
export const ISTIO_DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's buckets for istio_request_bytes and istio_response_bytes (powers of ten). */
export const ISTIO_BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

export interface RequestRecord {
  source: { ip: string; principal?: string };
  destination: { ip: string; principal?: string; service?: { namespace: string; name: string } };
  /** the endpoint the request went to, when one was chosen */
  upstreamIp?: string;
  protocol: 'http' | 'grpc';
  status: number;
  grpcStatus?: string;
  /** Envoy's response flags: "-" or e.g. UH (no healthy upstream), UF (connect failure), UT (timeout), NR (no route), DC (client gone) */
  flags: string;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
  /** upstream attempts made (1 without a retry, 0 when none was made) */
  attempts: number;
}

/**
 * istio_requests_total and friends with reporter="waypoint" (Istio "Standard
 * Metrics"): the same names, labels and buckets, so Istio's dashboards work.
 */
export function waypointMetrics(registry: Registry, index: () => ClusterIndex, clusterDomain: string) {
  const labelNames = [...ISTIO_HTTP_LABELS];
  const requests = new Counter({ name: 'istio_requests_total', help: 'Requests handled by the waypoint', labelNames, registers: [registry] });
  const duration = new Histogram({ name: 'istio_request_duration_milliseconds', help: 'Request duration through the waypoint', labelNames, buckets: ISTIO_DURATION_BUCKETS, registers: [registry] });
  const requestBytes = new Histogram({ name: 'istio_request_bytes', help: 'Request sizes (headers and body)', labelNames, buckets: ISTIO_BYTES_BUCKETS, registers: [registry] });
  const responseBytes = new Histogram({ name: 'istio_response_bytes', help: 'Response sizes (headers and body)', labelNames, buckets: ISTIO_BYTES_BUCKETS, registers: [registry] });
  const refused = new Counter({ name: 'warren_waypoint_refused_connections_total', help: 'Connections to the PROXY port refused before any request, by reason', labelNames: ['reason'], registers: [registry] });
  const tcp = new Counter({ name: 'warren_waypoint_tcp_connections_total', help: 'Streams forwarded as TCP (no HTTP detected), by outcome', labelNames: ['outcome'], registers: [registry] });
  // Envoy counts these per cluster (upstream_rq_retry); per destination Service is the same grain here.
  const retries = new Counter({ name: 'warren_waypoint_upstream_retries_total', help: 'Upstream attempts after the first (route retries and connect retries), by destination Service', labelNames: ['destination_service'], registers: [registry] });
  // prom-client hashes a label object on every inc/observe (25 labels, four metrics), and
  // building the labels costs as much: the children are kept per request facts (the
  // index's workloads, addresses, identities, outcome), bounded and dropped whenever the
  // index changes, so a request pays one short string join.
  type Children = { requests: ReturnType<typeof requests.labels>; duration: ReturnType<typeof duration.labels>; requestBytes: ReturnType<typeof requestBytes.labels>; responseBytes: ReturnType<typeof responseBytes.labels>; service: string };
  const children = new Map<string, Children>();
  let cachedFor: ClusterIndex | undefined;
  const MAX_CACHED = 10_000;
  const childrenFor = (ix: ClusterIndex, r: RequestRecord): Children => {
    const src: Workload | undefined = ix.workloadByIp(r.source.ip);
    const dst: Workload | undefined = r.upstreamIp === undefined ? undefined : ix.workloadByIp(r.upstreamIp);
    const base = istioTcpLabels(
      { pod: '', direction: 'inbound', reporter: 'destination', security: 'mtls', source: { ip: r.source.ip, port: 0, ...(r.source.principal ? { principal: r.source.principal } : {}) }, destination: { ip: r.destination.ip, port: 0, ...(r.destination.principal ? { principal: r.destination.principal } : {}) }, ...(r.destination.service ? { service: r.destination.service } : {}) },
      src,
      dst,
      clusterDomain,
    );
    const labels: Record<string, string> = { ...base, reporter: 'waypoint', request_protocol: r.protocol, response_flags: r.flags, response_code: String(r.status), grpc_response_status: r.grpcStatus ?? '' };
    return { requests: requests.labels(labels), duration: duration.labels(labels), requestBytes: requestBytes.labels(labels), responseBytes: responseBytes.labels(labels), service: labels.destination_service ?? 'unknown' };
  };
  return {
    refused,
    tcp,
    record(r: RequestRecord): void {
      const ix = index();
      if (ix !== cachedFor || children.size >= MAX_CACHED) {
        children.clear();
        cachedFor = ix;
      }
      const svc = r.destination.service;
      // every input of the labels (istioTcpLabels reads the workloads of the two addresses)
      const key = `${r.source.ip}\u0000${r.source.principal ?? ''}\u0000${r.destination.principal ?? ''}\u0000${svc === undefined ? '' : `${svc.namespace}/${svc.name}`}\u0000${r.upstreamIp ?? ''}\u0000${r.protocol}\u0000${r.flags}\u0000${r.status}\u0000${r.grpcStatus ?? ''}`;
      let c = children.get(key);
      if (c === undefined) {
        c = childrenFor(ix, r);
        children.set(key, c);
      }
      c.requests.inc();
      c.duration.observe(r.durationMs);
      c.requestBytes.observe(r.requestBytes);
      c.responseBytes.observe(r.responseBytes);
      if (r.attempts > 1) retries.inc({ destination_service: c.service }, r.attempts - 1);
    },
  };
}

export type WaypointMetrics = ReturnType<typeof waypointMetrics>;
