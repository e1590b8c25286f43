import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubernetesObject, V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { renderExplanation, renderL7 } from '../../../src/cli/policies-explain.js';
import { buildClusterIndex } from '../../../src/k8s/cluster-index.js';
import { buildWaypointIndex } from '../../../src/k8s/waypoint-index.js';
import { parseAuthorizationPolicy } from '../../../src/policy/authorization.js';
import { explainConnection, type ExplainState } from '../../../src/policy/explain.js';
import { waypointPolicy } from '../../../src/waypoint/l7-authorization.js';
import { explainL7, parseHttpProbe } from '../../../src/waypoint/l7-explain.js';

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
  assert.deepEqual(e.waypoints, [{ waypoint: 'shop/wp', principal: 'spiffe://cluster.local/ns/shop/sa/wp', via: 'Service shop/web (10.96.0.10:80)', applied: false, destination: { ip: '10.96.0.10', port: 80, service: { namespace: 'shop', name: 'web' } } }]);
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

// L7 (`policies explain --path/--method/--header`): policies with targetRefs, decided as the waypoint decides.
const targeted = (name: string, spec: object) => waypointPolicy({ metadata: { namespace: 'shop', name }, spec: { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], ...spec } })!.policy!;
const l7Policies = [
  targeted('web-allow', { rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] }, { to: [{ operation: { paths: ['/admin'] } }], when: [{ key: 'request.headers[x-team]', values: ['blue'] }] }] }),
  targeted('web-deny-delete', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
];

test('L7 explain: each waypoint on the path decides the request, naming the deciding policy and rule', () => {
  const e = explainConnection(state('service'), { from: 'shop/client', to: 'shop/web:8080' });
  const decide = (input: Parameters<typeof parseHttpProbe>[0]) => explainL7(e, l7Policies, parseHttpProbe(input))[0]!.decision;
  assert.deepEqual(decide({ method: 'GET', path: '/api/items?x=1' }), { allow: true, policy: 'shop/web-allow', reason: 'allowed by AuthorizationPolicy shop/web-allow rule 0' });
  assert.deepEqual(decide({ method: 'DELETE', path: '/api/items' }), { allow: false, policy: 'shop/web-deny-delete', reason: 'denied by AuthorizationPolicy shop/web-deny-delete rule 0' });
  assert.equal(decide({ path: '/admin' }).allow, false, 'rule 1 needs x-team: blue');
  assert.deepEqual(decide({ path: '/admin', headers: ['X-Team=blue'] }), { allow: true, policy: 'shop/web-allow', reason: 'allowed by AuthorizationPolicy shop/web-allow rule 1' });
  assert.match(decide({ method: 'POST', path: '/api/items' }).reason, /no rule of the ALLOW policies that apply matches \(shop\/web-allow\)/);
  const probe = parseHttpProbe({ method: 'DELETE', path: '/x' });
  assert.match(renderL7(explainL7(e, l7Policies, probe), probe), /^L7 DELETE \/x:\n  DENY   at waypoint shop\/wp \(Service shop\/web \(10\.96\.0\.10:80\)\): denied by AuthorizationPolicy shop\/web-deny-delete rule 0$/);
  // a policy for another Service's waypoint does not apply here
  assert.equal(explainL7(e, [targeted('other', { action: 'DENY', rules: [{}] })].map((t) => ({ ...t, targets: [{ kind: 'Service' as const, namespace: 'shop', name: 'db' }] })), probe)[0]!.decision.allow, true);
});

test('L7 explain without a waypoint on the path says HTTP rules are not enforced', () => {
  const e = explainConnection(state('none'), { from: 'shop/client', to: 'shop/web:8080' });
  const probe = parseHttpProbe({ path: '/admin' });
  assert.deepEqual(explainL7(e, l7Policies, probe), []);
  assert.match(renderL7([], probe), /no waypoint on this path, so HTTP rules are not enforced/);
});

test('L7 explain input: bad method, path or header is refused with the option named', () => {
  assert.throws(() => parseHttpProbe({ method: 'GE T' }), /--method: "GE T" is not an HTTP method/);
  assert.throws(() => parseHttpProbe({ path: 'admin' }), /--path: "admin" must start with '\/'/);
  assert.throws(() => parseHttpProbe({ headers: ['x-team'] }), /--header: "x-team" must be NAME=VALUE/);
  assert.throws(() => parseHttpProbe({ headers: ['bad name=1'] }), /--header/);
  assert.throws(() => parseHttpProbe({ headers: ['x=a\nb'] }), /--header x: the value must not contain CR, LF or NUL/);
  assert.deepEqual(parseHttpProbe({}), { method: 'GET', path: '/', headers: new Map() });
});
