import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubernetesObject, V1EndpointSlice, V1Namespace, V1Pod, V1Service } from '@kubernetes/client-node';
import { buildClusterIndex } from '../../../src/k8s/cluster-index.js';
import { buildWaypointIndex } from '../../../src/k8s/waypoint-index.js';
import { routeViaWaypoint, servedByWaypoint } from '../../../src/tunnel/waypoint-route.js';

const TD = 'cluster.local';
const pod = (ns: string, name: string, ip: string, over: { sa?: string; labels?: Record<string, string>; ready?: boolean } = {}): V1Pod => ({
  metadata: { name, namespace: ns, uid: `uid-${name}`, labels: over.labels ?? {}, annotations: { 'warren.io/redirection': 'enabled' } },
  spec: { containers: [], nodeName: 'node-1', serviceAccountName: over.sa ?? name },
  status: { podIP: ip, podIPs: [{ ip }], phase: 'Running', conditions: [{ type: 'Ready', status: over.ready === false ? 'False' : 'True' }] },
});
const wpPod = (ns: string, gw: string, name: string, ip: string, over: { sa?: string; ready?: boolean } = {}): V1Pod => pod(ns, name, ip, { sa: over.sa ?? gw, labels: { 'gateway.networking.k8s.io/gateway-name': gw }, ...(over.ready === undefined ? {} : { ready: over.ready }) });
const service = (ns: string, name: string, vip: string, labels: Record<string, string> = {}): V1Service => ({ metadata: { name, namespace: ns, labels }, spec: { clusterIP: vip, clusterIPs: [vip], ports: [{ port: 80, protocol: 'TCP' }] } });
const slice = (ns: string, svc: string, ips: string[]): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: { name: `${svc}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
  ports: [{ port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});
const gateway = (ns: string, name: string, waypointFor?: string, cls = 'warren-waypoint', allowedRoutes?: object): KubernetesObject & { spec: object } => ({
  metadata: { name, namespace: ns, ...(waypointFor ? { labels: { 'warren.io/waypoint-for': waypointFor } } : {}) },
  spec: { gatewayClassName: cls, listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', ...(allowedRoutes ? { allowedRoutes } : {}) }] },
});
/** infra/shared admits every namespace (its listener's consent), so shop's Service may use it */
const SHARED_FOR_ALL = { namespaces: { from: 'All' } };
const namespace = (name: string, labels: Record<string, string> = {}): V1Namespace => ({ metadata: { name, labels } });

function world(over: { pods?: V1Pod[]; services?: V1Service[]; gateways?: KubernetesObject[]; namespaces?: V1Namespace[] } = {}) {
  const pods = over.pods ?? [
    pod('shop', 'client', '10.244.1.2'),
    pod('shop', 'web-1', '10.244.2.2', { sa: 'web', labels: { 'warren.io/use-waypoint': 'wp' } }),
    wpPod('shop', 'wp', 'wp-a', '10.244.1.10'),
    wpPod('shop', 'wp', 'wp-b', '10.244.2.10'),
    wpPod('shop', 'wp', 'wp-c', '10.244.2.11', { ready: false }),
    wpPod('shop', 'wp', 'impostor', '10.244.2.12', { sa: 'default' }),
    wpPod('infra', 'shared', 'shared-a', '10.244.1.20'),
  ];
  const services = over.services ?? [
    service('shop', 'web', '10.96.0.10', { 'warren.io/use-waypoint': 'wp' }),
    service('shop', 'plain', '10.96.0.11'),
    service('shop', 'other', '10.96.0.12', { 'warren.io/use-waypoint': 'shared', 'warren.io/use-waypoint-namespace': 'infra' }),
    service('shop', 'ghost', '10.96.0.13', { 'warren.io/use-waypoint': 'nope' }),
    service('shop', 'wl', '10.96.0.14', { 'warren.io/use-waypoint': 'wl-only' }),
  ];
  const gateways = over.gateways ?? [gateway('shop', 'wp'), gateway('infra', 'shared', 'all', 'warren-waypoint', SHARED_FOR_ALL), gateway('shop', 'wl-only', 'workload'), gateway('shop', 'other-class', undefined, 'istio')];
  const namespaces = over.namespaces ?? [namespace('shop'), namespace('infra')];
  const slices = [slice('shop', 'web', ['10.244.2.2']), slice('shop', 'plain', ['10.244.2.2']), slice('shop', 'other', ['10.244.2.2'])];
  return { index: buildClusterIndex(pods, services, slices), waypoints: buildWaypointIndex({ namespaces, services, pods, gateways }) };
}
const client = { namespace: 'shop', labels: {}, serviceAccount: 'client' };

test('traffic to a Service with a waypoint goes over HBONE to its ready pods round robin, :authority = the VIP:port, expecting the waypoint identity', () => {
  const { index, waypoints } = world();
  const cursor = new Map<string, number>();
  const routes = [0, 1, 2].map(() => routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.10', port: 80 }, TD, cursor));
  assert.deepEqual(routes.map((r) => r?.kind === 'waypoint' && r.peer), ['10.244.1.10', '10.244.2.10', '10.244.1.10'], 'ready pods running as the waypoint account only');
  assert.deepEqual(routes[0], {
    kind: 'waypoint',
    peer: '10.244.1.10',
    identity: { trustDomain: TD, namespace: 'shop', serviceAccount: 'wp' },
    authority: { ip: '10.96.0.10', port: 80 },
    waypoint: { namespace: 'shop', name: 'wp' },
    service: { namespace: 'shop', name: 'web' },
  });
  const other = routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.12', port: 80 }, TD, cursor);
  assert.ok(other?.kind === 'waypoint' && other.peer === '10.244.1.20' && other.identity.namespace === 'infra' && other.identity.serviceAccount === 'shared');
});

test('no waypoint: undefined (the normal route); a pod IP uses its waypoint only when that waypoint is for workloads', () => {
  const { index, waypoints } = world();
  assert.equal(routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.11', port: 80 }, TD, new Map()), undefined);
  assert.equal(routeViaWaypoint(index, waypoints, client, { ip: '192.0.2.1', port: 80 }, TD, new Map()), undefined);
  assert.equal(routeViaWaypoint(index, waypoints, client, { ip: '10.244.2.2', port: 8080 }, TD, new Map()), undefined, 'wp is for services (the default)');
  const wl = world({ gateways: [gateway('shop', 'wp', 'all')] });
  const direct = routeViaWaypoint(wl.index, wl.waypoints, client, { ip: '10.244.2.2', port: 8080 }, TD, new Map());
  assert.ok(direct?.kind === 'waypoint' && direct.authority.ip === '10.244.2.2' && direct.service === undefined);
});

test('a waypoint-for mismatch is not used (as Istio); a missing waypoint or one without a ready pod fails closed', () => {
  const { index, waypoints } = world();
  assert.equal(routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.14', port: 80 }, TD, new Map()), undefined);
  assert.equal(waypoints.forService('shop', 'wl')?.state, 'mismatch');
  const ghost = routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.13', port: 80 }, TD, new Map());
  assert.ok(ghost?.kind === 'waypoint-unavailable' && /shop\/nope does not exist/.test(ghost.reason));
  const down = world({ pods: [pod('shop', 'client', '10.244.1.2'), wpPod('shop', 'wp', 'wp-a', '10.244.1.10', { ready: false })] });
  const r = routeViaWaypoint(down.index, down.waypoints, client, { ip: '10.96.0.10', port: 80 }, TD, new Map());
  assert.deepEqual(r, { kind: 'waypoint-unavailable', waypoint: { namespace: 'shop', name: 'wp' }, reason: 'waypoint shop/wp has no ready pod', service: { namespace: 'shop', name: 'web' } });
});

test("another namespace's waypoint without its listener's consent: refused with the reason, never sent to it nor around it", () => {
  const { index, waypoints } = world({ gateways: [gateway('shop', 'wp'), gateway('infra', 'shared', 'all')] });
  const r = routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.12', port: 80 }, TD, new Map());
  assert.ok(r?.kind === 'waypoint-unavailable', `refused, got ${JSON.stringify(r)}`);
  assert.match(r.reason, /waypoint infra\/shared does not admit namespace shop: .*from: Same/);
  assert.equal(waypoints.forService('shop', 'other')?.state, 'not-allowed');
  // consent by namespace label
  const selected = (labels: Record<string, string>) => world({ gateways: [gateway('infra', 'shared', 'all', 'warren-waypoint', { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'shop' } } } })], namespaces: [namespace('shop', labels), namespace('infra')] });
  const yes = selected({ team: 'shop' });
  assert.equal(routeViaWaypoint(yes.index, yes.waypoints, client, { ip: '10.96.0.12', port: 80 }, TD, new Map())?.kind, 'waypoint');
  const no = selected({ team: 'bank' });
  assert.equal(routeViaWaypoint(no.index, no.waypoints, client, { ip: '10.96.0.12', port: 80 }, TD, new Map())?.kind, 'waypoint-unavailable');
  // the waypoint's own pod takes no CONNECT for it either
  const self = { namespace: 'infra', labels: { 'gateway.networking.k8s.io/gateway-name': 'shared' }, serviceAccount: 'shared' };
  assert.equal(servedByWaypoint(no.index, no.waypoints, self, { ip: '10.96.0.12', port: 80 }), undefined);
});

test("the namespace label applies to its Services; a Service's none opts out", () => {
  const ns = [namespace('shop', { 'warren.io/use-waypoint': 'wp' }), namespace('infra')];
  const { index, waypoints } = world({ namespaces: ns, services: [service('shop', 'plain', '10.96.0.11'), service('shop', 'out', '10.96.0.15', { 'warren.io/use-waypoint': 'none' })] });
  assert.equal(routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.11', port: 80 }, TD, new Map())?.kind, 'waypoint');
  assert.equal(routeViaWaypoint(index, waypoints, client, { ip: '10.96.0.15', port: 80 }, TD, new Map()), undefined);
});

test("the waypoint's own upstream traffic goes direct, never back into itself; another waypoint's pods still use it", () => {
  const { index, waypoints } = world();
  const self = { namespace: 'shop', labels: { 'gateway.networking.k8s.io/gateway-name': 'wp' }, serviceAccount: 'wp' };
  assert.equal(routeViaWaypoint(index, waypoints, self, { ip: '10.96.0.10', port: 80 }, TD, new Map()), undefined);
  const impostor = { ...self, serviceAccount: 'default' };
  assert.equal(routeViaWaypoint(index, waypoints, impostor, { ip: '10.96.0.10', port: 80 }, TD, new Map())?.kind, 'waypoint', 'the label alone does not make a pod the waypoint');
  const shared = { namespace: 'infra', labels: { 'gateway.networking.k8s.io/gateway-name': 'shared' }, serviceAccount: 'shared' };
  assert.equal(routeViaWaypoint(index, waypoints, shared, { ip: '10.96.0.10', port: 80 }, TD, new Map())?.kind, 'waypoint');
});

test('a waypoint pod takes CONNECTs only for what it serves: its Services, not others, and nothing when it is no waypoint', () => {
  const { index, waypoints } = world();
  const self = { namespace: 'shop', labels: { 'gateway.networking.k8s.io/gateway-name': 'wp' }, serviceAccount: 'wp' };
  assert.deepEqual(servedByWaypoint(index, waypoints, self, { ip: '10.96.0.10', port: 80 }), { namespace: 'shop', name: 'wp' });
  assert.equal(servedByWaypoint(index, waypoints, self, { ip: '10.96.0.12', port: 80 }), undefined, "another waypoint's Service");
  assert.equal(servedByWaypoint(index, waypoints, self, { ip: '10.96.0.11', port: 80 }), undefined, 'a Service without a waypoint');
  assert.equal(servedByWaypoint(index, waypoints, self, { ip: '10.96.0.10', port: 81 }), undefined, 'a port the Service does not have');
  assert.equal(servedByWaypoint(index, waypoints, self, { ip: '10.244.2.2', port: 8080 }), undefined, 'a pod IP: wp is for services');
  assert.equal(servedByWaypoint(index, waypoints, client, { ip: '10.96.0.10', port: 80 }), undefined, 'not a waypoint pod');
  assert.equal(servedByWaypoint(index, waypoints, { ...self, serviceAccount: 'default' }, { ip: '10.96.0.10', port: 80 }), undefined);
});
