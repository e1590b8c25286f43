import type { Metric, Registry } from 'prom-client';
import type { ClusterIndex, Workload } from '../k8s/cluster-index.js';
import type { ConnectionMeta, ConnectionObserver, ConnectionResult, OpenConnection, Outcome } from './connection-observer.js';
import { istioTcpLabels, type IstioTcpLabels } from './istio-labels.js';

/** One label set's counts: plain numbers, bumped without touching prom-client on the connection path. */
interface Series {
  labels: IstioTcpLabels;
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

const COUNTERS = [
  ['istio_tcp_connections_opened_total', 'opened', 'TCP connections opened'],
  ['istio_tcp_connections_closed_total', 'closed', 'TCP connections closed'],
  // Istio counts from the server's side: "sent" is what the destination sent back.
  ['istio_tcp_sent_bytes_total', 'sent', 'Bytes the destination sent to the source over TCP connections'],
  ['istio_tcp_received_bytes_total', 'received', 'Bytes the destination received from the source over TCP connections'],
] as const;

/** The access log line of one connection (README "Access log" documents every field). */
export function accessLogEntry(
  meta: ConnectionMeta,
  src: Workload | undefined,
  dst: Workload | undefined,
  r: ConnectionResult & { outcome: Outcome; durationMs: number; policy?: string; reason?: string },
): Record<string, unknown> {
  const end = (w: Workload | undefined, side: ConnectionMeta['source']) => ({
    ip: side.ip,
    port: side.port,
    ...(w ? { workload: w.workload, namespace: w.namespace, pod: w.name } : {}),
    ...(side.principal ? { identity: side.principal } : {}),
  });
  return {
    reporter: meta.reporter,
    direction: meta.direction,
    pod: meta.pod,
    src: end(src, meta.source),
    dst: { ...end(dst, meta.destination), ...(meta.service ? { service: `${meta.service.namespace}/${meta.service.name}` } : {}) },
    security: meta.security,
    bytes_sent: r.bytesSent,
    bytes_received: r.bytesReceived,
    duration_ms: r.durationMs,
    outcome: r.outcome,
    ...(r.policy ? { policy: r.policy } : {}),
    ...(r.reason ? { reason: r.reason } : r.error ? { reason: r.error } : {}),
  };
}

/** An open connection's report: a plain object rather than a closure and its context (an agent holds one per idle connection). */
class Open implements OpenConnection {
  private done = false;

  constructor(
    private readonly meta: ConnectionMeta,
    private readonly src: Workload | undefined,
    private readonly dst: Workload | undefined,
    private readonly series: Series,
    private readonly started: number,
    private readonly accessLog: (entry: Record<string, unknown>) => void,
  ) {}

  closed(r: ConnectionResult): void {
    if (this.done) return;
    this.done = true;
    this.series.closed++;
    this.series.received += r.bytesSent;
    this.series.sent += r.bytesReceived;
    const outcome = r.error === undefined ? 'ok' : 'error';
    this.accessLog(accessLogEntry(this.meta, this.src, this.dst, { ...r, outcome, durationMs: Date.now() - this.started }));
  }
}

/**
 * Istio's TCP metrics and warren's access log for every connection the
 * agent's proxies carry. Workloads are looked up once, when the connection
 * opens; a label set is built once and kept (their number is bounded by
 * workload pairs, never by traffic).
 */
export class ConnectionTelemetry implements ConnectionObserver {
  private readonly series = new Map<string, Series>();

  constructor(private readonly o: { registry: Registry; index(): ClusterIndex; accessLog(entry: Record<string, unknown>): void; clusterDomain: string }) {
    // prom-client's labeled Counter hashes all 23 labels on every inc() (~10 µs each, four
    // per connection); a collector reading these plain counts at scrape time keeps that
    // off the connection path. The registry formats and escapes them like its own metrics.
    for (const [name, field, help] of COUNTERS) {
      const collector = {
        name,
        help,
        type: 'counter',
        aggregator: 'sum',
        get: async () => ({ name, help, type: 'counter', aggregator: 'sum', values: [...this.series.values()].filter((s) => s.opened > 0).map((s) => ({ labels: s.labels, value: s[field] })) }),
        reset: () => this.series.clear(),
      };
      o.registry.registerMetric(collector as unknown as Metric);
    }
  }

  opened(meta: ConnectionMeta): OpenConnection {
    const started = Date.now();
    const index = this.o.index();
    const src = index.workloadByIp(meta.source.ip);
    const dst = index.workloadByIp(meta.destination.ip);
    const series = this.seriesOf(meta, src, dst);
    series.opened++;
    return new Open(meta, src, dst, series, started, this.o.accessLog);
  }

  refused(meta: ConnectionMeta, outcome: Exclude<Outcome, 'ok'>, reason: string, policy?: string): void {
    const index = this.o.index();
    const entry = accessLogEntry(meta, index.workloadByIp(meta.source.ip), index.workloadByIp(meta.destination.ip), {
      bytesSent: 0,
      bytesReceived: 0,
      outcome,
      durationMs: 0,
      reason,
      ...(policy ? { policy } : {}),
    });
    this.o.accessLog(entry);
  }

  /** The series of a connection, keyed by what its labels are made of (cheaper than the labels). */
  private seriesOf(meta: ConnectionMeta, src: Workload | undefined, dst: Workload | undefined): Series {
    const w = (x: Workload | undefined): string => (x === undefined ? '' : `${x.namespace}/${x.workload}/${x.app}/${x.version}`);
    const svc = meta.service === undefined ? '' : `${meta.service.namespace}/${meta.service.name}`;
    const key = `${meta.reporter}|${meta.security}|${w(src)}|${meta.source.principal ?? ''}|${w(dst)}|${meta.destination.principal ?? ''}|${svc}`;
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels: istioTcpLabels(meta, src, dst, this.o.clusterDomain), opened: 0, closed: 0, sent: 0, received: 0 };
      this.series.set(key, s);
    }
    return s;
  }
}
