import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubernetesObject, V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { renderExplanation } from '../../../src/cli/policies-explain.js';
import { buildClusterIndex } from '../../../src/k8s/cluster-index.js';
import { buildWaypointIndex } from '../../../src/k8s/waypoint-index.js';
import { parseAuthorizationPolicy } from '../../../src/policy/authorization.js';
import { explainConnection, type ExplainState } from '../../../src/policy/explain.js';

const pod = (name: string, ip: string, sa: string, labels: Record<string, string> = {}): V1Pod => ({
  metadata: { namespace: 'shop', name, uid: `uid-${name}`, labels, annotations: { 'warren.io/redirection': 'enabled' } },
  spec: { containers: [], nodeName: 'node-1', serviceAccountName: sa },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
});
const pods = [pod('client', '10.244.1.2', 'client'), pod('web', '10.244.2.2', 'web', { app: 'web' }), pod('wp-1', '10.244.1.10', 'wp', { 'gateway.networking.k8s.io/gateway-name': 'wp' })];
const gateway = (waypointFor: string): KubernetesObject => ({ metadata: { namespace: 'shop', name: 'wp', labels: { 'warren.io/waypoint-for': waypointFor } }, spec: { gatewayClassName: 'warren-waypoint' } } as KubernetesObject);
const services: V1Service[] = [{ metadata: { namespace: 'shop', name: 'web', labels: { 'warren.io/use-waypoint': 'wp' } }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80, protocol: 'TCP' }] } }];
const slices: V1EndpointSlice[] = [{ addressType: 'IPv4', metadata: { namespace: 'shop', name: 'web-x', labels: { 'kubernetes.io/service-name': 'web' } }, ports: [{ port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: ['10.244.2.2'], conditions: { ready: true } }] }];
const onlyWaypoint = parseAuthorizationPolicy({ metadata: { namespace: 'shop', name: 'only-waypoint' }, spec: { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/wp'] } }] }] } });
const state = (waypointFor: string, webLabels: Record<string, string> = {}): ExplainState => {
  const all = pods.map((p) => (p.metadata!.name === 'web' ? { ...p, metadata: { ...p.metadata, labels: { ...p.metadata!.labels, ...webLabels } } } : p));
  return {
    index: buildClusterIndex(all, services, slices),
    authorizationPolicies: [onlyWaypoint],
    peerAuthentications: [],
    rootNamespace: 'warren-system',
    trustDomain: 'cluster.local',
    waypoints: buildWaypointIndex({ namespaces: [], services, pods: all, gateways: [gateway(waypointFor)] }),
  };
};

test("explain names the Service's waypoint and that the destination's L4 policies see the waypoint's identity", () => {
  const e = explainConnection(state('service'), { from: 'shop/client', to: 'shop/web:8080' });
  assert.deepEqual(e.waypoints, [{ waypoint: 'shop/wp', principal: 'spiffe://cluster.local/ns/shop/sa/wp', via: 'Service shop/web (10.96.0.10:80)', applied: false }]);
  assert.equal(e.decision, 'deny', 'pod-addressed traffic goes direct: the client is not the waypoint');
  assert.match(renderExplanation(e, 'node-1'), /traffic addressed to Service shop\/web \(10\.96\.0\.10:80\) goes through waypoint shop\/wp: there this pod's L4 policies see spiffe:\/\/cluster\.local\/ns\/shop\/sa\/wp, not the client's/);
  const hop = explainConnection(state('service'), { from: 'shop/wp-1', to: 'shop/web:8080' });
  assert.equal(hop.decision, 'allow', "the waypoint's hop, with its identity");
  assert.equal(hop.waypoints, undefined, 'the waypoint itself goes direct');
});

test('a pod using a workload waypoint: the decision is made for the waypoint identity, and says so', () => {
  const e = explainConnection(state('workload', { 'warren.io/use-waypoint': 'wp' }), { from: 'shop/client', to: 'shop/web:8080' });
  assert.equal(e.decision, 'allow');
  assert.match(e.reason, /^through waypoint shop\/wp, seen here as spiffe:\/\/cluster\.local\/ns\/shop\/sa\/wp: /);
  assert.equal(e.waypoints?.[0]?.applied, true);
  assert.match(renderExplanation(e, 'node-1'), /through waypoint shop\/wp \(pod shop\/web\): this pod's L4 policies see the waypoint's identity/);
});
