import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROXY_NODE_OPTIONS } from '../../../src/config/proxy-node-options.js';
import { TEMPLATE_HASH_ANNOTATION, acceptGateway, gatewayStatus, notReadyEventKey, waypointObjects, waypointParameters, type GatewayObject } from '../../../src/gateway/waypoint-objects.js';

const gateway = (over: { listeners?: GatewayObject['spec']['listeners']; labels?: Record<string, string>; status?: GatewayObject['status'] } = {}): GatewayObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: 'waypoint', namespace: 'shop', uid: 'gw-uid', generation: 3, ...(over.labels ? { labels: over.labels } : {}) },
  spec: { gatewayClassName: 'warren-waypoint', listeners: over.listeners ?? [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  ...(over.status ? { status: over.status } : {}),
});
const settings = { image: 'ghcr.io/warren-mesh/warren:9.9.9' };

test('a waypoint gets a ServiceAccount, Deployment and Service named after its Gateway and owned by it', () => {
  const o = waypointObjects(gateway(), settings);
  for (const obj of [o.serviceAccount, o.deployment, o.service]) {
    assert.equal(obj.metadata?.name, 'waypoint');
    assert.equal(obj.metadata?.namespace, 'shop');
    assert.deepEqual(obj.metadata?.ownerReferences, [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'waypoint', uid: 'gw-uid', controller: true, blockOwnerDeletion: true }]);
    assert.equal(obj.metadata?.labels?.['gateway.networking.k8s.io/gateway-name'], 'waypoint');
    assert.ok(obj.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION]);
  }
  const pod = o.deployment.spec!.template;
  assert.equal(pod.spec?.serviceAccountName, 'waypoint', 'its identity is spiffe://<td>/ns/shop/sa/waypoint');
  assert.equal(pod.metadata?.labels?.['warren.io/dataplane-mode'], 'ambient', 'enrolled: its agent terminates HBONE for it and captures its upstream');
  assert.equal(pod.metadata?.labels?.['warren.io/use-waypoint'], 'none');
  assert.deepEqual(o.deployment.spec!.selector.matchLabels, { 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
  const c = pod.spec!.containers[0]!;
  assert.equal(c.image, settings.image);
  assert.deepEqual(c.args, ['waypoint-proxy', '--listen-address', '127.0.0.1', '--listen-port', '15088'], 'PROXY v2 on loopback only');
  assert.equal(c.env?.find((e) => e.name === 'WARREN_WAYPOINT_NAME')?.value, 'waypoint');
  assert.deepEqual(c.env?.find((e) => e.name === 'WARREN_WAYPOINT_NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
  assert.equal(c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value, PROXY_NODE_OPTIONS, "the waypoint runs with the proxies' V8 flags (a bounded young generation)");
  assert.deepEqual(c.readinessProbe?.httpGet, { path: '/healthz/ready', port: 15021 });
  assert.deepEqual(o.service.spec!.selector, { 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
  assert.deepEqual(o.service.spec!.ports!.map((p) => `${p.name}:${p.port}`), ['mesh:15008', 'status-port:15021']);
  assert.equal(o.binding.metadata?.name, 'warren-waypoint-shop-waypoint');
  assert.deepEqual(o.binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'warren-waypoint' });
  assert.deepEqual(o.binding.subjects, [{ kind: 'ServiceAccount', name: 'waypoint', namespace: 'shop' }], 'the waypoint account only');
  assert.equal(o.binding.metadata?.ownerReferences, undefined, 'cluster-scoped: removed by the controller, not the garbage collector');
});

test('the template hash changes with what is generated, and only then', () => {
  const hash = (g: GatewayObject, s = settings) => waypointObjects(g, s).deployment.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION];
  assert.equal(hash(gateway()), hash(gateway({ status: { conditions: [] } })));
  assert.notEqual(hash(gateway()), hash(gateway(), { ...settings, image: 'other:1' }));
});

test('a Gateway is accepted with exactly the HBONE listener on 15008 and a valid waypoint-for', () => {
  assert.deepEqual(acceptGateway(gateway()), { accepted: true });
  assert.deepEqual(acceptGateway(gateway({ labels: { 'warren.io/waypoint-for': 'all' } })), { accepted: true });
  const noMesh = acceptGateway(gateway({ listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] }));
  assert.ok(!noMesh.accepted && noMesh.reason === 'ListenersNotValid' && /http 80\/HTTP/.test(noMesh.message));
  const extra = acceptGateway(gateway({ listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }, { name: 'http', port: 80, protocol: 'HTTP' }] }));
  assert.ok(!extra.accepted && /spec\.listeners\[1\]/.test(extra.message));
  const badFor = acceptGateway(gateway({ labels: { 'warren.io/waypoint-for': 'services' } }));
  assert.ok(!badFor.accepted && badFor.reason === 'InvalidParameters' && /waypoint-for/.test(badFor.message));
});

test('status: Programmed with an address once a pod is ready behind the Service; Pending says why; timestamps kept while unchanged', () => {
  const now = '2026-12-06T10:00:00Z';
  const ready = gatewayStatus(gateway(), { accepted: true }, { readyReplicas: 1, replicas: 1, address: '10.96.0.50' }, now);
  assert.deepEqual(ready.addresses, [{ type: 'IPAddress', value: '10.96.0.50' }]);
  assert.deepEqual(ready.conditions!.map((c) => [c.type, c.status, c.reason, c.observedGeneration]), [['Accepted', 'True', 'Accepted', 3], ['Programmed', 'True', 'Programmed', 3]]);
  const later = gatewayStatus(gateway({ status: ready }), { accepted: true }, { readyReplicas: 1, replicas: 1, address: '10.96.0.50' }, '2026-12-06T11:00:00Z');
  assert.deepEqual(later.conditions!.map((c) => c.lastTransitionTime), [now, now]);
  const down = gatewayStatus(gateway({ status: ready }), { accepted: true }, { readyReplicas: 0, replicas: 1, address: '10.96.0.50' }, '2026-12-06T12:00:00Z');
  const programmed = down.conditions!.find((c) => c.type === 'Programmed')!;
  assert.equal(programmed.status, 'False');
  assert.equal(programmed.reason, 'Pending');
  assert.match(programmed.message, /no waypoint pod is ready \(0\/1 ready\).*refused/);
  assert.equal(programmed.lastTransitionTime, '2026-12-06T12:00:00Z');
  assert.equal(down.conditions![0]!.lastTransitionTime, now, 'Accepted did not change');
  assert.match(gatewayStatus(gateway(), { accepted: true }, undefined, now).conditions![1]!.message, /Deployment is not created yet/);
  const rejected = gatewayStatus(gateway(), { accepted: false, reason: 'ListenersNotValid', message: 'x' }, undefined, now);
  assert.deepEqual(rejected.conditions!.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'False', 'ListenersNotValid'], ['Programmed', 'False', 'Invalid']]);
});

test('a not-ready Event: once per transition from True, named alike by two replicas whose passes fall in different seconds; a waypoint never ready warned about once after its grace', () => {
  const created = Date.parse('2026-12-06T09:00:00Z');
  const made = (status?: GatewayObject['status']): GatewayObject => ({ ...gateway(status ? { status } : {}), metadata: { ...gateway().metadata, creationTimestamp: new Date(created) } }) as GatewayObject;
  const at = (iso: string) => Date.parse(iso);
  const ready = { readyReplicas: 1, replicas: 1, address: '10.96.0.50' };
  const down = { readyReplicas: 0, replicas: 1, address: '10.96.0.50' };
  const pass = (gw: GatewayObject, facts: typeof down | undefined, iso: string) => notReadyEventKey(gw, gatewayStatus(gw, { accepted: true }, facts, iso), at(iso))?.key;

  const seenUp = made(gatewayStatus(made(), { accepted: true }, ready, '2026-12-06T10:00:00Z'));
  assert.equal(pass(seenUp, ready, '2026-12-06T12:00:00Z'), undefined, 'none while Programmed');
  // The two CA replicas each see the Gateway still True and compute the transition a second apart.
  const a = pass(seenUp, down, '2026-12-06T12:00:00Z');
  assert.ok(a !== undefined);
  assert.match(notReadyEventKey(seenUp, gatewayStatus(seenUp, { accepted: true }, down, '2026-12-06T12:00:00Z'), at('2026-12-06T12:00:00Z'))?.message ?? '', /no waypoint pod is ready \(0\/1 ready\)/, 'the Event says why');
  assert.equal(pass(seenUp, down, '2026-12-06T12:00:01Z'), a, 'one Event name for one transition');
  // Once either replica wrote False, later passes of both owe nothing more for it.
  const seenDown = made(gatewayStatus(seenUp, { accepted: true }, down, '2026-12-06T12:00:01Z'));
  assert.equal(pass(seenDown, down, '2026-12-06T12:00:02Z'), undefined);
  assert.equal(pass(seenDown, down, '2026-12-06T12:30:00Z'), undefined);
  // Back up, then down again: a new transition, a new name.
  const upAgain = made(gatewayStatus(seenDown, { accepted: true }, ready, '2026-12-06T13:00:00Z'));
  const again = pass(upAgain, down, '2026-12-06T14:00:00Z');
  assert.ok(again !== undefined && again !== a);

  // Never ready: nothing during the grace, then one name on every pass (the replicas' Events collide, 409).
  const pending = made(gatewayStatus(made(), { accepted: true }, undefined, '2026-12-06T09:00:01Z'));
  assert.equal(pass(pending, down, '2026-12-06T09:00:30Z'), undefined);
  const late = pass(pending, down, '2026-12-06T09:01:30Z');
  assert.ok(late !== undefined);
  assert.equal(pass(pending, down, '2026-12-06T09:05:00Z'), late);
  assert.equal(pass(made(), undefined, '2026-12-06T10:00:00Z'), late, 'a controller that finds an old Gateway without status: the same name');
});

test('warren status names each waypoint problem once, whatever number of agents report it', async () => {
  const { renderStatus } = await import('../../../src/cli/status.js');
  const status = (node: string) => ({
    node,
    backend: 'nft',
    enrolled: 1,
    certificates: { count: 1, valid: 1, soonestExpiry: null },
    policies: { authorization: 0, peerAuthentication: 0 },
    connections: 0,
    waypoints: [{ service: 'shop/web', waypoint: 'shop/wp', problem: 'no ready waypoint pod: its traffic is refused' }],
  });
  const text = renderStatus([{ node: 'node-1', ready: true, status: status('node-1') }, { node: 'node-2', ready: true, status: status('node-2') }], Date.now());
  assert.equal(text.split('\n').filter((l) => l === 'waypoint shop/wp of Service shop/web: no ready waypoint pod: its traffic is refused').length, 1);
});

test("replicas from the Gateway's parametersRef ConfigMap (Istio's `deployment` key): a PodDisruptionBudget of minAvailable 1 only above one replica; bad parameters refused naming the field", () => {
  const withRef = (ref: { group: string; kind: string; name: string }): GatewayObject => ({ ...gateway(), spec: { ...gateway().spec, infrastructure: { parametersRef: ref } } });
  const gw = withRef({ group: '', kind: 'ConfigMap', name: 'waypoint-params' });
  const cm = (deployment?: string) => ({ metadata: { name: 'waypoint-params', namespace: 'shop' }, ...(deployment === undefined ? {} : { data: { deployment } }) });
  assert.deepEqual(waypointParameters(gateway(), undefined), { ok: true, parameters: { replicas: 1 } }, 'no reference: one replica');
  assert.deepEqual(waypointParameters(gw, cm('spec:\n  replicas: 3\n')), { ok: true, parameters: { replicas: 3 } });
  assert.deepEqual(waypointParameters(gw, cm()), { ok: true, parameters: { replicas: 1 } }, 'no deployment key');
  const refused = (g: GatewayObject, c: ReturnType<typeof cm> | undefined): string => {
    const r = waypointParameters(g, c);
    assert.equal(r.ok, false);
    return (r as { message: string }).message;
  };
  assert.match(refused(gw, undefined), /parametersRef: ConfigMap shop\/waypoint-params not found/);
  assert.match(refused(withRef({ group: 'example.com', kind: 'Params', name: 'x' }), cm()), /example\.com\/Params is not supported/);
  assert.match(refused(gw, cm('spec:\n  replicas: 0\n')), /data\.deployment: spec\.replicas: /);
  assert.match(refused(gw, cm('spec:\n  replicas: 1000\n')), /spec\.replicas/);
  assert.match(refused(gw, cm('spec:\n  template: {}\n')), /data\.deployment: spec\.template: not supported \(only spec\.replicas\)/);
  assert.match(refused(gw, cm('spec: [')), /not YAML/);

  const one = waypointObjects(gateway(), settings, { replicas: 1 });
  assert.equal(one.deployment.spec?.replicas, 1);
  assert.equal(one.disruptionBudget, undefined, 'one replica: a minAvailable 1 budget would block every drain');
  const three = waypointObjects(gateway(), settings, { replicas: 3 });
  assert.equal(three.deployment.spec?.replicas, 3);
  assert.deepEqual(three.disruptionBudget?.spec, { minAvailable: 1, selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } } });
  assert.equal(three.disruptionBudget?.metadata?.ownerReferences?.[0]?.uid, 'gw-uid', 'owned by the Gateway');
  assert.notEqual(three.deployment.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION], one.deployment.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION], 'a new replica count re-applies the Deployment');
});
