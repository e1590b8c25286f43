/**
 * Memory and lookup cost of the data plane's cluster index (src/k8s/cluster-index.ts)
 * for a cluster of N pods with one Service and EndpointSlice per 10 pods: the
 * heap the index holds (the informer caches it is built from are measured too,
 * as the baseline they are), the rebuild time, and a lookup's cost.
 */
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { buildClusterIndex } from '../src/k8s/cluster-index.js';

const gc = (globalThis as { gc?: () => void }).gc;

function objects(n: number): { pods: V1Pod[]; services: V1Service[]; slices: V1EndpointSlice[] } {
  const ip = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const pods: V1Pod[] = Array.from({ length: n }, (_, i) => ({
    metadata: { name: `app-${i}-7d9f8c6b5-x${i}`, namespace: `ns-${i % 50}`, uid: `0b7c3a52-${String(i).padStart(4, '0')}-4c1e-9a7e-5f3d2c1b0a99`, labels: { app: `app-${Math.floor(i / 10)}`, 'pod-template-hash': '7d9f8c6b5' }, annotations: { 'warren.io/redirection': 'enabled' } },
    spec: { nodeName: `node-${i % 20}`, serviceAccountName: `sa-${Math.floor(i / 10)}`, containers: [{ name: 'app', image: 'registry.example/app:1.2.3', ports: [{ containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: ip(i), podIPs: [{ ip: ip(i) }], hostIP: `10.255.1.${i % 20}` },
  }));
  const services: V1Service[] = Array.from({ length: Math.ceil(n / 10) }, (_, s) => ({
    metadata: { name: `app-${s}`, namespace: `ns-${(s * 10) % 50}` },
    spec: { clusterIP: `10.96.${(s >> 8) & 255}.${s & 255}`, clusterIPs: [`10.96.${(s >> 8) & 255}.${s & 255}`], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
  }));
  const slices: V1EndpointSlice[] = services.map((svc, s) => ({
    addressType: 'IPv4',
    metadata: { name: `${svc.metadata!.name}-abcde`, namespace: svc.metadata!.namespace!, labels: { 'kubernetes.io/service-name': svc.metadata!.name! } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: 10 }, (_, k) => ({ addresses: [ip(s * 10 + k)], conditions: { ready: true } })),
  }));
  return { pods, services, slices };
}

const heap = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

export interface ClusterIndexResult {
  pods: number;
  gcExposed: boolean;
  objectsBytesPer1000Pods: number;
  indexBytesPer1000Pods: number;
  rebuildMs: number;
  lookupNs: number;
}

export async function benchClusterIndex(n = 10_000): Promise<ClusterIndexResult> {
  const h0 = heap();
  const o = objects(n);
  const h1 = heap();
  const started = process.hrtime.bigint();
  const index = buildClusterIndex(o.pods, o.services, o.slices);
  const rebuildMs = Number(process.hrtime.bigint() - started) / 1e6;
  const h2 = heap();
  const lookups = 1_000_000;
  const t = process.hrtime.bigint();
  let hits = 0;
  for (let i = 0; i < lookups; i++) if (index.workloadByIp(o.pods[i % n]!.status!.podIP!) !== undefined && index.serviceByVip(`10.96.0.${i % 250}`, 80) !== undefined) hits++;
  const lookupNs = Number(process.hrtime.bigint() - t) / lookups;
  if (hits === 0) throw new Error('no lookup hit: the synthetic cluster is wrong');
  return { pods: n, gcExposed: gc !== undefined, objectsBytesPer1000Pods: ((h1 - h0) * 1000) / n, indexBytesPer1000Pods: ((h2 - h1) * 1000) / n, rebuildMs, lookupNs };
}
