import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, PolicyV1Api, RbacAuthorizationV1Api, setHeaderOptions } from '@kubernetes/client-node';
import { startWaypointController } from '../../../src/gateway/waypoint-controller.js';
import { waypointGateway } from '../../../src/cli/waypoint.js';
import { typedCrds } from '../../../src/policy/crd-manifests.js';
import { eventually, startTestApiServer } from '../../helpers/apiserver.js';

const GATEWAYS = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** An API server with warren's CRDs and namespace shop, and the clients the tests use. */
async function world() {
  const api = await startTestApiServer();
  const ext = api.kc.makeApiClient(ApiextensionsV1Api);
  for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
  const core = api.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'shop' } } });
  return { api, core, apps: api.kc.makeApiClient(AppsV1Api), custom: api.kc.makeApiClient(CustomObjectsApi) };
}

type Status = { conditions?: Array<{ type: string; status: string; reason: string; message: string }>; addresses?: Array<{ type: string; value: string }> };

test('the controller against an API server: objects made, GatewayClass made, Programmed with the address when ready, False with a Warning Event when not, Events for missing and mismatched waypoints', async () => {
  const { api, core, apps, custom } = await world();
  const log: string[] = [];
  const controllers: Array<{ stop(): Promise<void> }> = [];
  try {
    await custom.createNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', body: waypointGateway('shop', 'waypoint', 'service') });
    // Two replicas, as deploy/10-ca.yaml runs: their writes must not fight.
    for (const instance of ['ca-1', 'ca-2']) {
      const c = startWaypointController(api.kc, { image: 'ghcr.io/warren-mesh/warren:0.1.0' }, (msg, f) => log.push(`${instance} ${msg} ${JSON.stringify(f)}`), instance);
      controllers.push(c);
      await c.synced;
    }
    const gateway = async (): Promise<Status> => ((await custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint' })) as { status?: Status }).status ?? {};
    const programmed = async () => (await gateway()).conditions?.find((c) => c.type === 'Programmed');

    // The controller makes the ServiceAccount, the Deployment, then the Service: wait for the last one.
    await eventually(async () => (await core.listNamespacedService({ namespace: 'shop' })).items.some((s) => s.metadata?.name === 'waypoint'), 'the Service');
    assert.equal((await apps.listNamespacedDeployment({ namespace: 'shop' })).items.length, 1, 'one Deployment from two controllers');
    const deployment = await apps.readNamespacedDeployment({ namespace: 'shop', name: 'waypoint' });
    assert.equal(deployment.spec?.template.spec?.serviceAccountName, 'waypoint');
    await core.readNamespacedServiceAccount({ namespace: 'shop', name: 'waypoint' });
    const service = await core.readNamespacedService({ namespace: 'shop', name: 'waypoint' });
    const rbac = api.kc.makeApiClient(RbacAuthorizationV1Api);
    const bindings = async () => (await rbac.listClusterRoleBinding()).items.filter((b) => b.roleRef.name === 'warren-waypoint');
    await eventually(async () => (await bindings()).length === 1, 'the ClusterRoleBinding');
    assert.deepEqual((await bindings())[0]!.subjects?.map((x) => `${x.kind} ${x.namespace}/${x.name}`), ['ServiceAccount shop/waypoint']);
    const gc = (await custom.getClusterCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gatewayclasses', name: 'warren-waypoint' })) as { spec: { controllerName: string } };
    assert.equal(gc.spec.controllerName, 'warren.io/waypoint-controller');
    await eventually(async () => (await programmed())?.reason === 'Pending', 'Programmed False while no pod is ready');
    assert.equal((await gateway()).conditions?.find((c) => c.type === 'Accepted')?.status, 'True');

    // What the Deployment controller would report once its pod is ready.
    const setReady = (n: number) => apps.patchNamespacedDeploymentStatus({ namespace: 'shop', name: 'waypoint', body: { status: { replicas: 1, readyReplicas: n } } }, mergePatch);
    await setReady(1);
    await eventually(async () => (await programmed())?.status === 'True', 'Programmed');
    assert.deepEqual((await gateway()).addresses, [{ type: 'IPAddress', value: service.spec!.clusterIP! }]);

    await setReady(0);
    await eventually(async () => (await programmed())?.status === 'False', 'Programmed False again');
    assert.match((await programmed())!.message, /no waypoint pod is ready \(0\/1 ready\)/);
    const events = async () => (await core.listNamespacedEvent({ namespace: 'shop' })).items;
    await eventually(async () => (await events()).some((e) => e.reason === 'WaypointNotReady' && e.involvedObject.kind === 'Gateway' && e.type === 'Warning'), 'the WaypointNotReady Event');
    assert.equal((await events()).filter((e) => e.reason === 'WaypointNotReady').length, 1, 'one Event for one transition, whatever the number of replicas');

    await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'ghost', labels: { 'warren.io/use-waypoint': 'nope' } }, spec: { ports: [{ port: 80 }] } } });
    await custom.createNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', body: waypointGateway('shop', 'wl', 'workload') });
    await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'mismatched', labels: { 'warren.io/use-waypoint': 'wl' } }, spec: { ports: [{ port: 80 }] } } });
    await eventually(async () => (await events()).some((e) => e.reason === 'WaypointMissing' && e.involvedObject.name === 'ghost'), 'WaypointMissing on the Service');
    await eventually(async () => (await events()).some((e) => e.reason === 'WaypointForMismatch' && e.involvedObject.name === 'mismatched' && /for workload traffic/.test(e.message ?? '')), 'WaypointForMismatch on the Service');

    // Another namespace's waypoint: only with its listener's consent (allowedRoutes), else a WaypointNotAllowed Event on what binds to it.
    await core.createNamespace({ body: { metadata: { name: 'bank', labels: { 'warren.io/use-waypoint': 'waypoint', 'warren.io/use-waypoint-namespace': 'shop' } } } });
    await core.createNamespacedService({ namespace: 'bank', body: { metadata: { name: 'ledger', labels: { 'warren.io/use-waypoint': 'waypoint', 'warren.io/use-waypoint-namespace': 'shop' } }, spec: { ports: [{ port: 80 }] } } });
    const bankEvents = async () => (await core.listNamespacedEvent({ namespace: 'bank' })).items;
    const notAllowed = (kind: string) => async () => (await bankEvents()).some((e) => e.reason === 'WaypointNotAllowed' && e.involvedObject.kind === kind && /waypoint shop\/waypoint does not admit namespace bank: listener mesh admits routes from its own namespace shop only/.test(e.message ?? ''));
    await eventually(notAllowed('Service'), 'WaypointNotAllowed on the Service');
    await eventually(notAllowed('Namespace'), 'WaypointNotAllowed on the Namespace');
    const patched = (await custom.patchNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint', body: { spec: { listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces: { from: 'All' } } }] } } }, mergePatch)) as { metadata: { generation: number } };
    // the controllers have seen the consent once they report on that generation
    const seen = async () => ((await custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint' })) as { status?: { conditions?: Array<{ type: string; observedGeneration?: number }> } }).status?.conditions?.find((c) => c.type === 'Accepted')?.observedGeneration === patched.metadata.generation;
    await eventually(seen, 'the Gateway with consent observed');
    await core.createNamespacedService({ namespace: 'bank', body: { metadata: { name: 'vault', labels: { 'warren.io/use-waypoint': 'waypoint', 'warren.io/use-waypoint-namespace': 'shop' } }, spec: { ports: [{ port: 80 }] } } });
    // a later binding to a missing waypoint: once its Event is in, the pass that saw vault is done too
    await core.createNamespacedService({ namespace: 'bank', body: { metadata: { name: 'marker', labels: { 'warren.io/use-waypoint': 'nope' } }, spec: { ports: [{ port: 80 }] } } });
    await eventually(async () => (await bankEvents()).some((e) => e.reason === 'WaypointMissing' && e.involvedObject.name === 'marker'), 'the pass after vault');
    assert.ok(!(await bankEvents()).some((e) => e.involvedObject.name === 'vault'), 'with consent (from: All) no Event for a new binding');

    // A Gateway the controller cannot run: not accepted, its Deployment removed, so what uses it fails closed.
    await custom.patchNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint', body: { spec: { listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } } }, mergePatch);
    await eventually(async () => (await gateway()).conditions?.find((c) => c.type === 'Accepted')?.reason === 'ListenersNotValid', 'Accepted False');
    await eventually(async () => !(await apps.listNamespacedDeployment({ namespace: 'shop' })).items.some((d) => d.metadata?.name === 'waypoint'), 'the Deployment removed');
    await eventually(async () => (await bindings()).every((b) => b.subjects?.[0]?.name !== 'waypoint'), "its ServiceAccount's rights removed");
    await custom.deleteNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'wl' });
    await eventually(async () => (await bindings()).length === 0, 'no waypoint rights left once the Gateways are gone');
  } finally {
    for (const c of controllers) await c.stop();
    await api.stop();
  }
});

test('replicas from the parametersRef ConfigMap: the Deployment scaled, a PodDisruptionBudget (minAvailable 1) while above one, removed at one; a missing ConfigMap is InvalidParameters', async () => {
  const { api, core, apps, custom } = await world();
  const policy = api.kc.makeApiClient(PolicyV1Api);
  let controller: { stop(): Promise<void> } | undefined;
  try {
    const params = (replicas: number) => ({ metadata: { name: 'waypoint-params', namespace: 'shop' }, data: { deployment: `spec:\n  replicas: ${replicas}\n` } });
    await core.createNamespacedConfigMap({ namespace: 'shop', body: params(3) });
    const gw = waypointGateway('shop', 'waypoint', 'service');
    await custom.createNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', body: { ...gw, spec: { ...gw.spec, infrastructure: { parametersRef: { group: '', kind: 'ConfigMap', name: 'waypoint-params' } } } } });
    const c = startWaypointController(api.kc, { image: 'ghcr.io/warren-mesh/warren:0.1.0' }, () => undefined, 'ca-1');
    controller = c;
    await c.synced;
    const replicas = async () => (await apps.readNamespacedDeployment({ namespace: 'shop', name: 'waypoint' }).catch(() => undefined))?.spec?.replicas;
    const budget = () => policy.readNamespacedPodDisruptionBudget({ namespace: 'shop', name: 'waypoint' }).catch(() => undefined);
    await eventually(async () => (await replicas()) === 3, 'the Deployment with 3 replicas');
    await eventually(async () => (await budget()) !== undefined, 'the PodDisruptionBudget');
    const pdb = (await budget())!;
    assert.equal(pdb.spec?.minAvailable, 1);
    assert.deepEqual(pdb.spec?.selector?.matchLabels, { 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
    assert.equal(pdb.metadata?.ownerReferences?.[0]?.kind, 'Gateway');

    // one replica: the budget goes (the ConfigMap alone changed, so the next pass — here a Gateway label — applies it)
    await core.replaceNamespacedConfigMap({ namespace: 'shop', name: 'waypoint-params', body: params(1) });
    await custom.patchNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint', body: { metadata: { labels: { touched: '1' } } } }, mergePatch);
    await eventually(async () => (await replicas()) === 1 && (await budget()) === undefined, 'one replica, no PodDisruptionBudget');

    // the ConfigMap gone: not accepted, InvalidParameters naming the reference, and nothing runs as this waypoint
    await core.deleteNamespacedConfigMap({ namespace: 'shop', name: 'waypoint-params' });
    await custom.patchNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint', body: { metadata: { labels: { touched: '2' } } } }, mergePatch);
    const accepted = async () => ((await custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint' })) as { status?: Status }).status?.conditions?.find((x) => x.type === 'Accepted');
    await eventually(async () => (await accepted())?.reason === 'InvalidParameters', 'Accepted False InvalidParameters');
    assert.match((await accepted())!.message, /spec\.infrastructure\.parametersRef: ConfigMap shop\/waypoint-params not found/);
    await eventually(async () => (await replicas()) === undefined, 'the Deployment removed');
  } finally {
    await controller?.stop();
    await api.stop();
  }
});
