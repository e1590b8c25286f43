import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { workloadNames } from '../../src/k8s/workload-name.js';
import type { ConnectionMeta } from '../../src/telemetry/connection-observer.js';
import { ConnectionTelemetry } from '../../src/telemetry/connection-telemetry.js';
import { istioTcpLabels } from '../../src/telemetry/istio-labels.js';
import { sample } from '../helpers/prometheus.js';

const pod = (name: string, ip: string, meta: Partial<NonNullable<V1Pod['metadata']>> = {}): V1Pod => ({
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, annotations: { 'warren.io/redirection': 'enabled' }, ...meta },
  spec: { containers: [], nodeName: 'node-1', serviceAccountName: name.split('-')[0]! },
  status: { podIPs: [{ ip }], phase: 'Running' },
});
const owned = (kind: string, name: string) => ({ ownerReferences: [{ apiVersion: 'apps/v1', kind, name, uid: 'x', controller: true }] });

test('workload names follow Istio: Deployment behind a ReplicaSet, CronJob behind a Job, else the owner or the pod', () => {
  assert.deepEqual(workloadNames(pod('web-7d9f-x2x', '1.1.1.1', { labels: { 'pod-template-hash': '7d9f', app: 'web', version: 'v2' }, ...owned('ReplicaSet', 'web-7d9f') })), {
    workload: 'web',
    app: 'web',
    version: 'v2',
  });
  assert.equal(workloadNames(pod('backup-28512345-abc', '1.1.1.1', owned('Job', 'backup-28512345'))).workload, 'backup');
  assert.equal(workloadNames(pod('db-0', '1.1.1.1', owned('StatefulSet', 'db'))).workload, 'db');
  const bare = workloadNames(pod('client', '1.1.1.1', { labels: { 'app.kubernetes.io/name': 'shopper', 'service.istio.io/canonical-revision': 'canary' } }));
  assert.deepEqual(bare, { workload: 'client', app: 'shopper', version: 'canary' });
  assert.deepEqual(workloadNames(pod('solo', '1.1.1.1')), { workload: 'solo', app: 'solo', version: 'latest' });
});

const index = buildClusterIndex(
  [
    pod('client-5c-aa', '10.244.1.5', { labels: { 'pod-template-hash': '5c', app: 'client' }, ...owned('ReplicaSet', 'client-5c') }),
    pod('web-6b-bb', '10.244.2.7', { labels: { 'pod-template-hash': '6b', app: 'web', version: 'v1' }, ...owned('ReplicaSet', 'web-6b') }),
  ],
  [],
  [],
);
const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const outbound: ConnectionMeta = {
  pod: 'shop/client-5c-aa',
  direction: 'outbound',
  reporter: 'source',
  security: 'mtls',
  source: { ip: '10.244.1.5', port: 40000, principal: CLIENT },
  destination: { ip: '10.244.2.7', port: 8080, principal: WEB },
  service: { namespace: 'shop', name: 'web' },
};

test('Istio labels name workloads, principals and the service; the caller outside the mesh is "unknown"; plaintext is "none"', () => {
  const labels = istioTcpLabels(outbound, index.workloadByIp('10.244.1.5'), index.workloadByIp('10.244.2.7'), 'cluster.local');
  assert.equal(labels.reporter, 'source');
  assert.equal(labels.source_workload, 'client');
  assert.equal(labels.destination_workload, 'web');
  assert.equal(labels.destination_version, 'v1');
  assert.equal(labels.source_principal, CLIENT);
  assert.equal(labels.destination_principal, WEB);
  assert.equal(labels.destination_service, 'web.shop.svc.cluster.local');
  assert.equal(labels.connection_security_policy, 'mutual_tls');
  const stranger: ConnectionMeta = { pod: 'shop/web-6b-bb', direction: 'inbound', reporter: 'destination', security: 'plaintext', source: { ip: '192.0.2.1', port: 1 }, destination: { ip: '10.244.2.7', port: 8080 } };
  const l2 = istioTcpLabels(stranger, undefined, index.workloadByIp('10.244.2.7'), 'cluster.local');
  assert.equal(l2.source_workload, 'unknown');
  assert.equal(l2.source_principal, 'unknown');
  assert.equal(l2.destination_service, 'unknown');
  assert.equal(l2.connection_security_policy, 'none');
  for (const v of Object.values(labels)) assert.doesNotMatch(v, /10\.244|:\d+$/, 'no IPs or ports in labels');
});

test('three connections: opened/closed counts, bytes in Istio directions, one access log line each with both identities', async () => {
  const registry = new Registry();
  const lines: Array<Record<string, any>> = [];
  const telemetry = new ConnectionTelemetry({ registry, index: () => index, clusterDomain: 'cluster.local', accessLog: (e) => lines.push(e) });
  const open = [telemetry.opened(outbound), telemetry.opened(outbound), telemetry.opened(outbound)];
  let text = await registry.metrics();
  assert.equal(sample(text, 'istio_tcp_connections_opened_total', { reporter: 'source', destination_workload: 'web' }), 3);
  assert.equal(sample(text, 'istio_tcp_connections_closed_total', { reporter: 'source' }), 0, 'nothing closed yet');
  open[0]!.closed({ bytesSent: 100, bytesReceived: 1000 });
  open[1]!.closed({ bytesSent: 200, bytesReceived: 2000 });
  open[2]!.closed({ bytesSent: 300, bytesReceived: 3000, error: 'ECONNRESET' });
  open[2]!.closed({ bytesSent: 300, bytesReceived: 3000 });
  text = await registry.metrics();
  const sel = { reporter: 'source', source_workload: 'client', destination_workload: 'web', connection_security_policy: 'mutual_tls' };
  assert.equal(sample(text, 'istio_tcp_connections_closed_total', sel), 3, 'a second close of the same connection is not counted');
  assert.equal(sample(text, 'istio_tcp_received_bytes_total', sel), 600, 'received: what the destination got from the source');
  assert.equal(sample(text, 'istio_tcp_sent_bytes_total', sel), 6000, 'sent: what the destination sent back');
  assert.equal(lines.length, 3);
  assert.deepEqual(
    lines.map((l) => l['outcome']),
    ['ok', 'ok', 'error'],
  );
  assert.equal(lines[0]!['src'].identity, CLIENT);
  assert.equal(lines[0]!['dst'].identity, WEB);
  assert.equal(lines[0]!['src'].workload, 'client');
  assert.equal(lines[0]!['dst'].service, 'shop/web');
  assert.equal(lines[0]!['bytes_sent'], 100);
  assert.equal(lines[2]!['reason'], 'ECONNRESET');

  telemetry.refused({ ...outbound, reporter: 'destination', direction: 'inbound' }, 'denied', 'denied by policy shop/deny-client', 'shop/deny-client');
  assert.equal(lines.length, 4);
  assert.equal(lines[3]!['outcome'], 'denied');
  assert.equal(lines[3]!['policy'], 'shop/deny-client');
  text = await registry.metrics();
  assert.equal(sample(text, 'istio_tcp_connections_opened_total', { reporter: 'destination' }), undefined, 'a refused connection never opened');
});
