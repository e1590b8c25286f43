import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { ISTIO_DURATION_BUCKETS, waypointMetrics, type RequestRecord } from '../../src/waypoint/waypoint-metrics.js';
import { sample } from '../helpers/prometheus.js';

const pod = (name: string, ip: string, app: string): V1Pod => ({
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, annotations: { 'warren.io/redirection': 'enabled' }, labels: { 'pod-template-hash': '5c', app }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-5c`, uid: 'x', controller: true }] },
  spec: { containers: [], nodeName: 'node-1', serviceAccountName: app },
  status: { podIPs: [{ ip }], phase: 'Running' },
});
// two pods of one client Deployment, and the web backend
const index = buildClusterIndex([pod('client-5c-a', '10.244.1.5', 'client'), pod('client-5c-b', '10.244.1.6', 'client'), pod('web-5c-a', '10.244.2.7', 'web')], [], []);

const request = (sourceIp: string, durationMs: number, extra: Partial<RequestRecord> = {}): RequestRecord => ({
  source: { ip: sourceIp, principal: 'spiffe://cluster.local/ns/shop/sa/client' },
  destination: { ip: '10.96.0.10', service: { namespace: 'shop', name: 'web' } },
  upstreamIp: '10.244.2.7',
  protocol: 'http',
  status: 200,
  flags: '-',
  durationMs,
  requestBytes: 100,
  responseBytes: 1100,
  attempts: 1,
  ...extra,
});

test('request metrics: one series per workload pair and outcome, Istio histogram buckets cumulative with the bound inclusive, sum and count', async () => {
  const registry = new Registry();
  const metrics = waypointMetrics(registry, () => index, 'cluster.local');
  // two pods of the same workload land in one series; a boundary value counts in its own bucket (le is "less or equal")
  metrics.record(request('10.244.1.5', 0.5));
  metrics.record(request('10.244.1.6', 0.7));
  metrics.record(request('10.244.1.5', 7000, { attempts: 3 }));
  metrics.record(request('10.244.1.5', 2, { status: 503, flags: 'UH' }));
  const text = await registry.metrics();
  const ok = { source_workload: 'client', destination_workload: 'web', destination_service: 'web.shop.svc.cluster.local', response_code: '200', reporter: 'waypoint' };
  assert.equal(sample(text, 'istio_requests_total', ok), 3);
  assert.equal(sample(text, 'istio_requests_total', { ...ok, response_code: '503', response_flags: 'UH' }), 1);
  const bucket = (le: string): number | undefined => sample(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le });
  assert.deepEqual(['0.5', '1', '5', '5000', '10000', '+Inf'].map(bucket), [1, 2, 2, 2, 3, 3]);
  assert.equal(ISTIO_DURATION_BUCKETS.length + 1, text.split('\n').filter((l) => l.startsWith('istio_request_duration_milliseconds_bucket{') && l.includes('response_code="200"')).length, 'every Istio bound and +Inf, once');
  assert.equal(sample(text, 'istio_request_duration_milliseconds_sum', ok), 7001.2);
  assert.equal(sample(text, 'istio_request_duration_milliseconds_count', ok), 3);
  assert.equal(sample(text, 'istio_response_bytes_bucket', { ...ok, le: '1000' }), 0);
  assert.equal(sample(text, 'istio_response_bytes_bucket', { ...ok, le: '10000' }), 3);
  assert.equal(sample(text, 'istio_request_bytes_sum', ok), 300);
  assert.equal(sample(text, 'warren_waypoint_upstream_retries_total', { destination_service: 'web.shop.svc.cluster.local' }), 2);
  // the exposition a scraper parses: le first, then Istio's labels in their documented order
  assert.match(text, /^istio_request_duration_milliseconds_bucket\{le="0\.5",reporter="waypoint",source_workload="client",/m);
  assert.match(text, /^# TYPE istio_request_duration_milliseconds histogram$/m);
  assert.match(text, /^# TYPE istio_requests_total counter$/m);
});
