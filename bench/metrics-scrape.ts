/**
 * The agent's /metrics with 100 enrolled pods on its node, each talking to
 * five peers in each direction (1000 Istio label sets × 4 counters, the
 * series a busy node holds): scrape time through the real HTTP endpoint,
 * against the same scrape with only the agent's own metrics as baseline;
 * and what the telemetry adds to one connection (open + close).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { buildClusterIndex } from '../src/k8s/cluster-index.js';
import { agentMetrics } from '../src/telemetry/agent-metrics.js';
import type { ConnectionMeta } from '../src/telemetry/connection-observer.js';
import { ConnectionTelemetry } from '../src/telemetry/connection-telemetry.js';
import { serveEndpoints } from '../src/telemetry/http-endpoints.js';

const PODS = 100;
const PEERS = 5;
const SCRAPES = 60;

const ip = (i: number): string => `10.244.${i >> 8}.${i & 255}`;
const pods: V1Pod[] = Array.from({ length: PODS * 2 }, (_, i) => ({
  metadata: { name: `app-${i}-7d9f8c6b5-abcde`, namespace: `ns-${i % 10}`, uid: `uid-${i}`, labels: { app: `app-${i}`, 'pod-template-hash': '7d9f8c6b5' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `app-${i}-7d9f8c6b5`, uid: 'rs', controller: true }], annotations: { 'warren.io/redirection': 'enabled' } },
  spec: { nodeName: i < PODS ? 'node-1' : 'node-2', serviceAccountName: `sa-${i}`, containers: [] },
  status: { phase: 'Running', podIPs: [{ ip: ip(i) }] },
}));
const index = buildClusterIndex(pods, [], []);
const principal = (i: number): string => `spiffe://cluster.local/ns/ns-${i % 10}/sa/sa-${i}`;

function meta(local: number, peer: number, reporter: 'source' | 'destination'): ConnectionMeta {
  const [src, dst] = reporter === 'source' ? [local, peer] : [peer, local];
  return {
    pod: `ns-${local % 10}/app-${local}`,
    direction: reporter === 'source' ? 'outbound' : 'inbound',
    reporter,
    security: 'mtls',
    source: { ip: ip(src), port: 40000, principal: principal(src) },
    destination: { ip: ip(dst), port: 8080, principal: principal(dst) },
    service: { namespace: `ns-${dst % 10}`, name: `app-${dst}` },
  };
}

const ns = (t: bigint): number => Number(t);
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function scrapeTimes(registry: Registry): Promise<{ p50ms: number; p99ms: number; bytes: number; series: number }> {
  const server = await serveEndpoints('127.0.0.1:0', {
    '/metrics': async (_q, res) => void res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics()),
  });
  const { port } = server.address() as { port: number };
  const times: number[] = [];
  let text = '';
  try {
    // The first requests pay for the HTTP client's and the formatter's warm-up.
    for (let i = 0; i < 5; i++) await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (let i = 0; i < SCRAPES; i++) {
      const t0 = process.hrtime.bigint();
      text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      times.push(ns(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    server.close();
  }
  const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  return { p50ms: pct(times, 50), p99ms: pct(times, 99), bytes: Buffer.byteLength(text), series };
}

export interface MetricsScrapeResult {
  pods: number;
  labelSets: number;
  baseline: Awaited<ReturnType<typeof scrapeTimes>>;
  loaded: Awaited<ReturnType<typeof scrapeTimes>>;
  /** open + close of one connection whose series exist (the steady state) */
  perConnectionNs: number;
  /** the same with a first-seen label set (a new workload pair) */
  newSeriesNs: number;
}

export async function benchMetricsScrape(): Promise<MetricsScrapeResult> {
  const registry = new Registry();
  agentMetrics(registry, () => PODS);
  const baseline = await scrapeTimes(registry);
  const telemetry = new ConnectionTelemetry({ registry, index: () => index, clusterDomain: 'cluster.local', accessLog: () => {} });
  const result = { bytesSent: 1000, bytesReceived: 5000 };
  let t0 = process.hrtime.bigint();
  let labelSets = 0;
  for (let local = 0; local < PODS; local++) {
    for (let k = 1; k <= PEERS; k++) {
      telemetry.opened(meta(local, PODS + ((local + k) % PODS), 'source')).closed(result);
      telemetry.opened(meta(local, PODS + ((local + k * 7) % PODS), 'destination')).closed(result);
      labelSets += 2;
    }
  }
  const newSeriesNs = ns(process.hrtime.bigint() - t0) / labelSets;
  const steady = meta(3, PODS + 4, 'source');
  const N = 200_000;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) telemetry.opened(steady).closed(result);
  const perConnectionNs = ns(process.hrtime.bigint() - t0) / N;
  const loaded = await scrapeTimes(registry);
  return { pods: PODS, labelSets, baseline, loaded, perConnectionNs, newSeriesNs };
}
