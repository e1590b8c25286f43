import { Counter, type Registry } from 'prom-client';
import type { ClusterIndex, Workload } from '../k8s/cluster-index.js';
import type { ConnectionMeta, ConnectionObserver, ConnectionResult, OpenConnection, Outcome } from './connection-observer.js';
import { ISTIO_TCP_LABELS, istioTcpLabels, type IstioTcpLabels } from './istio-labels.js';

interface Series {
  opened: { inc(): void };
  closed: { inc(): void };
  sent: { inc(n: number): void };
  received: { inc(n: number): void };
}

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

/**
 * Istio's TCP metrics and warren's access log for every connection the
 * agent's proxies carry. Workloads are looked up once, when the connection
 * opens; the series of a label set are resolved once and kept (their number
 * is bounded by workload pairs).
 */
export class ConnectionTelemetry implements ConnectionObserver {
  private readonly opens: Counter;
  private readonly closes: Counter;
  private readonly sentBytes: Counter;
  private readonly receivedBytes: Counter;
  private readonly series = new Map<string, Series>();

  constructor(private readonly o: { registry: Registry; index(): ClusterIndex; accessLog(entry: Record<string, unknown>): void; clusterDomain: string }) {
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ISTIO_TCP_LABELS, registers: [o.registry] });
    this.opens = counter('istio_tcp_connections_opened_total', 'TCP connections opened');
    this.closes = counter('istio_tcp_connections_closed_total', 'TCP connections closed');
    // Istio counts from the server's side: "sent" is what the destination sent back.
    this.sentBytes = counter('istio_tcp_sent_bytes_total', 'Bytes the destination sent to the source over TCP connections');
    this.receivedBytes = counter('istio_tcp_received_bytes_total', 'Bytes the destination received from the source over TCP connections');
  }

  opened(meta: ConnectionMeta): OpenConnection {
    const started = Date.now();
    const index = this.o.index();
    const src = index.workloadByIp(meta.source.ip);
    const dst = index.workloadByIp(meta.destination.ip);
    const series = this.seriesOf(istioTcpLabels(meta, src, dst, this.o.clusterDomain));
    series.opened.inc();
    let done = false;
    return {
      closed: (r) => {
        if (done) return;
        done = true;
        series.closed.inc();
        series.received.inc(r.bytesSent);
        series.sent.inc(r.bytesReceived);
        const outcome = r.error === undefined ? 'ok' : 'error';
        this.o.accessLog(accessLogEntry(meta, src, dst, { ...r, outcome, durationMs: Date.now() - started }));
      },
    };
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

  private seriesOf(labels: IstioTcpLabels): Series {
    const key = ISTIO_TCP_LABELS.map((l) => labels[l]).join('\u0001');
    let s = this.series.get(key);
    if (s === undefined) {
      s = { opened: this.opens.labels(labels), closed: this.closes.labels(labels), sent: this.sentBytes.labels(labels), received: this.receivedBytes.labels(labels) };
      this.series.set(key, s);
    }
    return s;
  }
}
