import { Counter, type Metric, type Registry } from 'prom-client';
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

/** One label set's request counts and the three histograms' buckets: plain numbers, bumped without prom-client on the request path. */
interface Series {
  labels: Record<string, string>;
  requests: number;
  histograms: [Buckets, Buckets, Buckets];
}
interface Buckets {
  /** per bucket, not cumulative; the last one is +Inf */
  counts: number[];
  sum: number;
}

const HISTOGRAMS = [
  ['istio_request_duration_milliseconds', 'Request duration through the waypoint', ISTIO_DURATION_BUCKETS],
  ['istio_request_bytes', 'Request sizes (headers and body)', ISTIO_BYTES_BUCKETS],
  ['istio_response_bytes', 'Response sizes (headers and body)', ISTIO_BYTES_BUCKETS],
] as const;

function observe(b: Buckets, bounds: readonly number[], value: number): void {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  b.counts[i]!++;
  b.sum += value;
}

/** prom-client's histogram exposition: cumulative `_bucket{le=…}` lines, then `_sum` and `_count`. */
function histogramValues(name: string, bounds: readonly number[], series: Iterable<Series>, which: number) {
  const values: Array<{ labels: Record<string, string | number>; sharedLabels: Record<string, string>; value: number; metricName: string }> = [];
  for (const s of series) {
    const h = s.histograms[which]!;
    let acc = 0;
    bounds.forEach((le, i) => values.push({ labels: { le }, sharedLabels: s.labels, value: (acc += h.counts[i]!), metricName: `${name}_bucket` }));
    acc += h.counts[bounds.length]!;
    values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: acc, metricName: `${name}_bucket` }, { labels: {}, sharedLabels: s.labels, value: h.sum, metricName: `${name}_sum` }, { labels: {}, sharedLabels: s.labels, value: acc, metricName: `${name}_count` });
  }
  return values;
}

/**
 * istio_requests_total and friends with reporter="waypoint" (Istio "Standard
 * Metrics"): the same names, labels and buckets, so Istio's dashboards work.
 */
export function waypointMetrics(registry: Registry, index: () => ClusterIndex, clusterDomain: string) {
  // prom-client hashes and validates all 25 labels on every inc()/observe(), a labels() child
  // too: four per request were ~20 µs, 5 % of the waypoint's CPU per request. As the agent's
  // TCP metrics (src/telemetry/connection-telemetry.ts), the request path bumps plain
  // numbers of its series and collectors read them at scrape time; the registry formats
  // them like its own.
  const series = new Map<string, Series>();
  const collector = (name: string, help: string, type: 'counter' | 'histogram', values: () => unknown[]) => ({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset: () => series.clear(),
  });
  registry.registerMetric(collector('istio_requests_total', 'Requests handled by the waypoint', 'counter', () => [...series.values()].map((s) => ({ labels: s.labels, value: s.requests }))) as unknown as Metric);
  HISTOGRAMS.forEach(([name, help, bounds], i) => registry.registerMetric(collector(name, help, 'histogram', () => histogramValues(name, bounds, series.values(), i)) as unknown as Metric));
  const refused = new Counter({ name: 'warren_waypoint_refused_connections_total', help: 'Connections to the PROXY port refused before any request, by reason', labelNames: ['reason'], registers: [registry] });
  const tcp = new Counter({ name: 'warren_waypoint_tcp_connections_total', help: 'Streams forwarded as TCP (no HTTP detected), by outcome', labelNames: ['outcome'], registers: [registry] });
  // Envoy counts these per cluster (upstream_rq_retry); per destination Service is the same grain here.
  const retries = new Counter({ name: 'warren_waypoint_upstream_retries_total', help: 'Upstream attempts after the first (route retries and connect retries), by destination Service', labelNames: ['destination_service'], registers: [registry] });

  /** The series of a request, keyed by what its labels are made of (cheaper than the labels; bounded by workload pairs and outcomes, never by addresses). */
  const seriesOf = (r: RequestRecord, src: Workload | undefined, dst: Workload | undefined): Series => {
    const w = (x: Workload | undefined): string => (x === undefined ? '' : `${x.namespace}/${x.workload}/${x.app}/${x.version}`);
    const svc = r.destination.service === undefined ? '' : `${r.destination.service.namespace}/${r.destination.service.name}`;
    const key = `${w(src)}|${r.source.principal ?? ''}|${w(dst)}|${r.destination.principal ?? ''}|${svc}|${r.protocol}|${r.flags}|${r.status}|${r.grpcStatus ?? ''}`;
    let s = series.get(key);
    if (s === undefined) {
      const base = istioTcpLabels(
        { pod: '', direction: 'inbound', reporter: 'destination', security: 'mtls', source: { ip: r.source.ip, port: 0, ...(r.source.principal ? { principal: r.source.principal } : {}) }, destination: { ip: r.destination.ip, port: 0, ...(r.destination.principal ? { principal: r.destination.principal } : {}) }, ...(r.destination.service ? { service: r.destination.service } : {}) },
        src,
        dst,
        clusterDomain,
      );
      const labels: Record<string, string> = { ...base, reporter: 'waypoint', request_protocol: r.protocol, response_flags: r.flags, response_code: String(r.status), grpc_response_status: r.grpcStatus ?? '' };
      const buckets = (bounds: readonly number[]): Buckets => ({ counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 });
      s = { labels: Object.fromEntries(ISTIO_HTTP_LABELS.map((n) => [n, labels[n]!])), requests: 0, histograms: [buckets(ISTIO_DURATION_BUCKETS), buckets(ISTIO_BYTES_BUCKETS), buckets(ISTIO_BYTES_BUCKETS)] };
      series.set(key, s);
    }
    return s;
  };
  return {
    refused,
    tcp,
    record(r: RequestRecord): void {
      const ix = index();
      const s = seriesOf(r, ix.workloadByIp(r.source.ip), r.upstreamIp === undefined ? undefined : ix.workloadByIp(r.upstreamIp));
      s.requests++;
      observe(s.histograms[0], ISTIO_DURATION_BUCKETS, r.durationMs);
      observe(s.histograms[1], ISTIO_BYTES_BUCKETS, r.requestBytes);
      observe(s.histograms[2], ISTIO_BYTES_BUCKETS, r.responseBytes);
      if (r.attempts > 1) retries.inc({ destination_service: s.labels.destination_service ?? 'unknown' }, r.attempts - 1);
    },
  };
}

export type WaypointMetrics = ReturnType<typeof waypointMetrics>;
