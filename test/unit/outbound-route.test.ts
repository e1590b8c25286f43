import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { routeOutbound } from '../../src/tunnel/outbound-route.js';

const pod = (name: string, ip: string, over: { enrolled?: boolean; sa?: string; node?: string; hostNetwork?: boolean; phase?: string; labels?: Record<string, string> } = {}): V1Pod => ({
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, ...(over.labels ? { labels: over.labels } : {}), annotations: over.enrolled === false ? {} : { 'warren.io/redirection': 'enabled' } },
  spec: { containers: [], nodeName: over.node ?? 'node-1', serviceAccountName: over.sa ?? 'web', ...(over.hostNetwork ? { hostNetwork: true } : {}) },
  status: { podIPs: [{ ip }], phase: over.phase ?? 'Running' },
});
const service = (name: string, vip: string, ports: Array<{ name?: string; port: number }>, labels: Record<string, string> = {}): V1Service => ({
  metadata: { name, namespace: 'shop', labels },
  spec: { clusterIP: vip, clusterIPs: [vip], ports: ports.map((p) => ({ ...p, protocol: 'TCP' })) },
});
const slice = (svc: string, ports: Array<{ name?: string; port: number }>, endpoints: Array<{ ip: string; ready?: boolean }>): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: { name: `${svc}-x`, namespace: 'shop', labels: { 'kubernetes.io/service-name': svc } },
  ports: ports.map((p) => ({ ...p, protocol: 'TCP' })),
  endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true } })),
});

const pods = [pod('web-1', '10.244.1.2'), pod('web-2', '10.244.2.2', { node: 'node-2' }), pod('db-1', '10.244.1.3', { sa: 'db', labels: { app: 'db' } }), pod('legacy', '10.244.2.9', { enrolled: false }), pod('host', '10.255.1.1', { hostNetwork: true }), pod('done', '10.244.1.9', { phase: 'Succeeded' })];
const index = buildClusterIndex(
  pods,
  [service('web', '10.96.0.10', [{ name: 'http', port: 80 }]), service('empty', '10.96.0.11', [{ port: 80 }]), service('mixed', '10.96.0.12', [{ port: 9000 }], { 'warren.io/use-waypoint': 'waypoint' })],
  [
    slice('web', [{ name: 'http', port: 8080 }], [{ ip: '10.244.2.2' }, { ip: '10.244.1.2' }, { ip: '10.244.1.7', ready: false }]),
    slice('mixed', [{ port: 9000 }], [{ ip: '10.244.2.9' }]),
  ],
);

test('workloads by IP: identity, node and enrollment; host-network and finished pods are no workload', () => {
  assert.deepEqual(index.workloadByIp('10.244.1.3'), { uid: 'uid-db-1', namespace: 'shop', name: 'db-1', serviceAccount: 'db', node: 'node-1', ips: ['10.244.1.3'], labels: { app: 'db' }, enrolled: true, workload: 'db-1', app: 'db', version: 'latest' });
  assert.equal(index.workloadByIp('10.255.1.1'), undefined);
  assert.equal(index.workloadByIp('10.244.1.9'), undefined);
  assert.deepEqual(index.size, { workloads: 4, servicePorts: 3 });
  assert.equal(index.serviceByVip('10.96.0.12', 9000)?.waypoint, 'waypoint');
});

test('workloads by namespace/name: the same entry as by IP; pods that are no workload are not found', () => {
  assert.equal(index.workloadByName('shop', 'db-1'), index.workloadByIp('10.244.1.3'));
  assert.equal(index.workloadByName('shop', 'legacy')?.enrolled, false);
  assert.deepEqual(index.workloadByName('shop', 'web-2')?.labels, {});
  assert.equal(index.workloadByName('other', 'db-1'), undefined);
  assert.equal(index.workloadByName('shop', 'host'), undefined, 'host network');
  assert.equal(index.workloadByName('shop', 'done'), undefined, 'finished');
});

test('a service VIP picks ready endpoints round robin, on the endpoint port, then HBONE to an enrolled pod with its identity', () => {
  const cursor = new Map<string, number>();
  const picks = [0, 1, 2, 3].map(() => routeOutbound(index, { ip: '10.96.0.10', port: 80 }, 'cluster.local', cursor));
  assert.deepEqual(picks.map((r) => r.kind === 'hbone' && `${r.target.ip}:${r.target.port}`), ['10.244.1.2:8080', '10.244.2.2:8080', '10.244.1.2:8080', '10.244.2.2:8080']);
  const first = picks[0]!;
  assert.ok(first.kind === 'hbone');
  assert.deepEqual(first.identity, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
  assert.deepEqual(first.service, { namespace: 'shop', name: 'web' });
});

test('pod IPs route directly; unenrolled and unknown destinations pass through; a service without endpoints is refused', () => {
  const cursor = new Map<string, number>();
  const direct = routeOutbound(index, { ip: '10.244.1.3', port: 5432 }, 'cluster.local', cursor);
  assert.ok(direct.kind === 'hbone' && direct.identity.serviceAccount === 'db' && direct.target.port === 5432);
  assert.deepEqual(routeOutbound(index, { ip: '10.244.2.9', port: 80 }, 'cluster.local', cursor), { kind: 'passthrough', target: { ip: '10.244.2.9', port: 80 } });
  assert.deepEqual(routeOutbound(index, { ip: '192.0.2.1', port: 443 }, 'cluster.local', cursor), { kind: 'passthrough', target: { ip: '192.0.2.1', port: 443 } });
  assert.deepEqual(routeOutbound(index, { ip: '10.96.0.12', port: 9000 }, 'cluster.local', cursor), { kind: 'passthrough', target: { ip: '10.244.2.9', port: 9000 }, service: { namespace: 'shop', name: 'mixed' } });
  assert.deepEqual(routeOutbound(index, { ip: '10.96.0.11', port: 80 }, 'cluster.local', cursor), { kind: 'no-endpoints', service: { namespace: 'shop', name: 'empty' } });
  assert.deepEqual(routeOutbound(index, { ip: '10.96.0.10', port: 443 }, 'cluster.local', cursor), { kind: 'passthrough', target: { ip: '10.96.0.10', port: 443 } }, 'a port the service does not have');
});
