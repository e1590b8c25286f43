import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ClusterRoleBinding,
  type V1Deployment,
  type V1Namespace,
  type V1PodDisruptionBudget,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { coalesced } from '../agent/coalesced.js';
import { startResilientInformer, type ResilientInformer } from '../k8s/resilient-informer.js';
import { warningEvent } from '../k8s/warning-event.js';
import { attach, waypointFor, waypointRef, type Attachment, type TrafficKind } from './attachment.js';
import { GATEWAY_GROUP, GATEWAY_VERSION, MANAGED_LABEL, MANAGED_VALUE, USE_WAYPOINT_LABEL, WAYPOINT_CLASS, WAYPOINT_CONTROLLER_NAME } from './constants.js';
import { TEMPLATE_HASH_ANNOTATION, WAYPOINT_GATEWAY_ANNOTATION, acceptGateway, gatewayStatus, notReadyEventKey, waypointObjects, waypointParameters, type Acceptance, type GatewayObject, type WaypointSettings } from './waypoint-objects.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const GATEWAYS = { group: GATEWAY_GROUP, version: GATEWAY_VERSION, plural: 'gateways' };
const managed = `${MANAGED_LABEL}=${MANAGED_VALUE}`;
interface GatewayClassObject extends KubernetesObject {
  spec?: { controllerName?: string };
  status?: { conditions?: Array<{ type: string; status: string }> };
}
const key = (o: KubernetesObject): string => `${o.metadata?.namespace}/${o.metadata?.name}`;
const isConflict = (err: unknown, ...codes: number[]): boolean => err instanceof ApiException && codes.includes(err.code);
/** A status compared without its timestamps: only a real change is written. */
const comparable = (s: GatewayObject['status']): string => JSON.stringify({ ...s, conditions: s?.conditions?.map(({ lastTransitionTime: _t, ...c }) => c) });

export interface WaypointController {
  synced: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The waypoint controller (docs/architecture.md §13), run by `warren ca` as istiod runs
 * Istio's: for every Gateway of class warren-waypoint it makes the
 * ServiceAccount, Deployment and Service of waypointObjects() (owned by the
 * Gateway: the garbage collector removes them with it) and the
 * ClusterRoleBinding that lets the waypoint read (removed by the controller), re-applies them
 * when what it generates changes (an edit of the Deployment stays until
 * then), and reports Accepted/Programmed and the address in the Gateway's
 * status. A waypoint that is not ready gets a Warning Event; so does a
 * Service or Namespace whose `warren.io/use-waypoint` names a waypoint that
 * does not exist or does not take its traffic (waypoint-for). Level
 * triggered: any change runs one pass over everything; both CA replicas may
 * run it, their writes are idempotent and their Events share names.
 */
export function startWaypointController(kc: KubeConfig, settings: WaypointSettings, log: Log, instance: string): WaypointController {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const policy = kc.makeApiClient(PolicyV1Api);
  const evented = new Set<string>();
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const event = (apiVersion: string, kind: string, object: KubernetesObject, reason: string, message: string, dedupe: string): void => {
    const id = `${object.metadata?.uid}|${reason}|${dedupe}`;
    if (evented.has(id)) return;
    evented.add(id);
    const body = warningEvent({ apiVersion, kind, object }, reason, message, { component: 'warren-waypoint-controller', reportingComponent: WAYPOINT_CONTROLLER_NAME, instance }, new Date(), dedupe);
    void core.createNamespacedEvent({ namespace: body.metadata.namespace!, body }).catch((err: unknown) => {
      if (isConflict(err, 409)) return;
      evented.delete(id);
      log('waypoint event not recorded', { object: key(object), reason, err: (err as Error).message });
    });
    log(message, { object: `${kind} ${key(object)}`, reason });
  };

  /** Creates `desired`, or replaces the existing object when what the controller generates changed. */
  async function apply<T extends KubernetesObject>(
    kind: string,
    desired: T,
    existing: T | undefined,
    ops: { create(): Promise<unknown>; replace(body: T): Promise<unknown> },
  ): Promise<void> {
    const want = desired.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION];
    if (existing !== undefined && existing.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION] === want) return;
    try {
      if (existing === undefined) await ops.create();
      else await ops.replace({ ...desired, metadata: { ...desired.metadata, resourceVersion: existing.metadata?.resourceVersion } });
      log(`waypoint ${kind} ${existing === undefined ? 'created' : 'updated'}`, { object: key(desired) });
    } catch (err) {
      // The other replica, or the informer running behind: the next pass sees the truth.
      if (!isConflict(err, 409)) throw err;
    }
  }

  async function reconcileGateway(gw: GatewayObject, bindings: readonly V1ClusterRoleBinding[]): Promise<void> {
    const namespace = gw.metadata!.namespace!;
    const name = gw.metadata!.name!;
    const listeners = acceptGateway(gw);
    // Istio's parametersRef ConfigMap, read on each pass (a change to it alone is seen at the next resync)
    const ref = gw.spec.infrastructure?.parametersRef;
    const configMap = ref?.group === '' && ref.kind === 'ConfigMap' ? await core.readNamespacedConfigMap({ namespace, name: ref.name }).catch((err: unknown) => (isConflict(err, 404) ? undefined : Promise.reject(err))) : undefined;
    const parameters = waypointParameters(gw, configMap);
    const acceptance: Acceptance = !listeners.accepted || parameters.ok ? listeners : { accepted: false, reason: 'InvalidParameters', message: parameters.message };
    const deployment = deployments.list().find((d) => key(d) === key(gw));
    const service = services.list().find((s) => key(s) === key(gw) && s.metadata?.labels?.[MANAGED_LABEL] === MANAGED_VALUE);
    if (acceptance.accepted && parameters.ok) {
      const made = waypointObjects(gw, settings, parameters.parameters);
      const sa = await core.readNamespacedServiceAccount({ namespace, name }).catch((err: unknown) => (isConflict(err, 404) ? undefined : Promise.reject(err)));
      await apply<V1ServiceAccount>('ServiceAccount', made.serviceAccount, sa, {
        create: () => core.createNamespacedServiceAccount({ namespace, body: made.serviceAccount }),
        replace: (body) => core.replaceNamespacedServiceAccount({ namespace, name, body }),
      });
      await apply<V1Deployment>('Deployment', made.deployment, deployment, {
        create: () => apps.createNamespacedDeployment({ namespace, body: made.deployment }),
        replace: (body) => apps.replaceNamespacedDeployment({ namespace, name, body }),
      });
      const binding = bindings.find((b) => b.metadata?.name === made.binding.metadata?.name);
      await apply<V1ClusterRoleBinding>('ClusterRoleBinding', made.binding, binding, {
        create: () => rbac.createClusterRoleBinding({ body: made.binding }),
        replace: (body) => rbac.replaceClusterRoleBinding({ name: body.metadata!.name!, body }),
      });
      await apply<V1Service>('Service', made.service, service, {
        create: () => core.createNamespacedService({ namespace, body: made.service }),
        // The ClusterIP is the API server's: keep it.
        replace: (body) => core.replaceNamespacedService({ namespace, name, body: { ...body, spec: { ...body.spec, ...(service?.spec?.clusterIP ? { clusterIP: service.spec.clusterIP } : {}), ...(service?.spec?.clusterIPs ? { clusterIPs: service.spec.clusterIPs } : {}) } } }),
      });
      const budget = await policy.readNamespacedPodDisruptionBudget({ namespace, name }).catch((err: unknown) => (isConflict(err, 404) ? undefined : Promise.reject(err)));
      if (made.disruptionBudget !== undefined) {
        const body = made.disruptionBudget;
        await apply<V1PodDisruptionBudget>('PodDisruptionBudget', body, budget, {
          create: () => policy.createNamespacedPodDisruptionBudget({ namespace, body }),
          replace: (b) => policy.replaceNamespacedPodDisruptionBudget({ namespace, name, body: b }),
        });
      } else if (budget?.metadata?.labels?.[MANAGED_LABEL] === MANAGED_VALUE) {
        // one replica: a budget of minAvailable 1 would block every drain of its node
        await policy.deleteNamespacedPodDisruptionBudget({ namespace, name }).then(
          () => log('waypoint PodDisruptionBudget deleted: one replica', { object: key(gw) }),
          (err: unknown) => (isConflict(err, 404) ? undefined : Promise.reject(err)),
        );
      }
    } else if (deployment !== undefined) {
      // Not accepted: nothing may serve as this waypoint, so what uses it fails closed.
      await apps.deleteNamespacedDeployment({ namespace, name }).catch((err: unknown) => (isConflict(err, 404) ? undefined : Promise.reject(err)));
    }
    const address = service?.spec?.clusterIP;
    const facts = deployment === undefined ? undefined : { readyReplicas: deployment.status?.readyReplicas ?? 0, replicas: deployment.spec?.replicas ?? 1, ...(address && address !== 'None' ? { address } : {}) };
    const status = gatewayStatus(gw, acceptance, facts, new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
    const owed = notReadyEventKey(gw, status, Date.now());
    if (owed !== undefined) {
      event(`${GATEWAY_GROUP}/${GATEWAY_VERSION}`, 'Gateway', gw, acceptance.accepted ? 'WaypointNotReady' : 'WaypointNotAccepted', `waypoint ${key(gw)}: ${owed.message}`, owed.key);
    }
    if (comparable(status) === comparable(gw.status)) return;
    await custom.patchNamespacedCustomObjectStatus({ ...GATEWAYS, namespace, name, body: { status } }, mergePatch).catch((err: unknown) => {
      if (!isConflict(err, 404)) throw err;
    });
  }

  /**
   * Namespaces and Services that name a waypoint which is missing, does not take their
   * traffic, or is another namespace's that does not admit theirs (allowedRoutes).
   */
  function reportAttachments(waypoints: readonly GatewayObject[]): void {
    const byKey = new Map(waypoints.map((g) => [key(g), { waypointFor: waypointFor(g.metadata?.labels), listeners: g.spec?.listeners }]));
    const nsLabels = new Map(namespaces.list().map((n) => [n.metadata?.name ?? '', n.metadata?.labels ?? {}]));
    const check = (apiVersion: string, kind: string, object: KubernetesObject, ref: ReturnType<typeof waypointRef>, traffic: TrafficKind, report: ReadonlySet<Attachment['state']>): void => {
      if (ref === undefined) return;
      const namespace = object.metadata?.namespace ?? '';
      const a = attach(ref, traffic, byKey.get(`${ref.namespace}/${ref.name}`), { namespace, namespaceLabels: nsLabels.get(namespace) });
      if (a.state === 'bound' || !report.has(a.state)) return;
      if (a.state === 'missing') event(apiVersion, kind, object, 'WaypointMissing', `${kind} ${key(object)}: ${a.message}; its traffic is refused until it exists`, `${ref.namespace}/${ref.name}`);
      if (a.state === 'mismatch') event(apiVersion, kind, object, 'WaypointForMismatch', `${kind} ${key(object)}: ${a.message}`, `${ref.namespace}/${ref.name}|${traffic}`);
      // the dedupe key changes with the Gateway's listeners, so a changed refusal is reported again
      if (a.state === 'not-allowed') event(apiVersion, kind, object, 'WaypointNotAllowed', `${kind} ${key(object)}: ${a.message}`, `${ref.namespace}/${ref.name}|${JSON.stringify(byKey.get(`${ref.namespace}/${ref.name}`)?.listeners ?? null)}`);
    };
    const every = new Set<Attachment['state']>(['missing', 'mismatch', 'not-allowed']);
    for (const svc of services.list()) {
      if (svc.metadata?.labels?.[USE_WAYPOINT_LABEL] === undefined && nsLabels.get(svc.metadata?.namespace ?? '')?.[USE_WAYPOINT_LABEL] === undefined) continue;
      check('v1', 'Service', svc, waypointRef({ namespace: svc.metadata?.namespace ?? '', labels: svc.metadata?.labels ?? {} }, nsLabels.get(svc.metadata?.namespace ?? '')), 'service', every);
    }
    // A namespace's label binds its Services and pods alike, so waypoint-for is checked per Service above, not here.
    const refusals = new Set<Attachment['state']>(['missing', 'not-allowed']);
    for (const ns of namespaces.list()) {
      const ref = waypointRef({ namespace: ns.metadata?.name ?? '', labels: ns.metadata?.labels ?? {} }, undefined);
      const kind: TrafficKind = ref !== undefined && byKey.get(`${ref.namespace}/${ref.name}`)?.waypointFor === 'workload' ? 'workload' : 'service';
      check('v1', 'Namespace', { ...ns, metadata: { ...ns.metadata, namespace: ns.metadata?.name ?? '' } }, ref, kind, refusals);
    }
  }

  /** The class of warren's waypoints, made when missing (as istiod makes istio-waypoint) and marked Accepted. */
  async function ensureClass(): Promise<void> {
    const classes = { group: GATEWAY_GROUP, version: GATEWAY_VERSION, plural: 'gatewayclasses' };
    const existing = (await custom.getClusterCustomObject({ ...classes, name: WAYPOINT_CLASS }).catch((err: unknown) => (isConflict(err, 404) ? undefined : Promise.reject(err)))) as GatewayClassObject | undefined;
    if (existing === undefined) {
      const body = { apiVersion: `${GATEWAY_GROUP}/${GATEWAY_VERSION}`, kind: 'GatewayClass', metadata: { name: WAYPOINT_CLASS, labels: { 'app.kubernetes.io/part-of': 'warren' } }, spec: { controllerName: WAYPOINT_CONTROLLER_NAME, description: "warren's L7 waypoints, reached over HBONE" } };
      await custom.createClusterCustomObject({ ...classes, body }).catch((err: unknown) => (isConflict(err, 409) ? undefined : Promise.reject(err)));
      log('GatewayClass created', { name: WAYPOINT_CLASS });
      return ensureClass();
    }
    if (existing.spec?.controllerName !== WAYPOINT_CONTROLLER_NAME || existing.status?.conditions?.some((c) => c.type === 'Accepted' && c.status === 'True')) return;
    const accepted = { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'handled by warren ca', observedGeneration: existing.metadata?.generation ?? 0, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
    await custom.patchClusterCustomObjectStatus({ ...classes, name: WAYPOINT_CLASS, body: { status: { conditions: [accepted] } } }, mergePatch);
  }

  async function pass(): Promise<void> {
    const waypoints = (gateways.list() as GatewayObject[]).filter((g) => g.spec?.gatewayClassName === WAYPOINT_CLASS && g.metadata?.deletionTimestamp === undefined);
    const bindings = (await rbac.listClusterRoleBinding({ labelSelector: managed })).items;
    for (const gw of waypoints) {
      await reconcileGateway(gw, bindings).catch((err: Error) => log('waypoint reconcile failed (retried on the next change or resync)', { gateway: key(gw), err: err.message }));
    }
    // A ClusterRoleBinding cannot be owned by a namespaced Gateway: the rights go when the Gateway does.
    const live = new Set(waypoints.filter((g) => acceptGateway(g).accepted).map(key));
    for (const b of bindings) {
      if (live.has(b.metadata?.annotations?.[WAYPOINT_GATEWAY_ANNOTATION] ?? '')) continue;
      await rbac.deleteClusterRoleBinding({ name: b.metadata!.name! }).then(
        () => log('waypoint ClusterRoleBinding deleted: its Gateway is gone', { binding: b.metadata?.name }),
        (err: unknown) => (isConflict(err, 404) ? undefined : log('waypoint ClusterRoleBinding not deleted', { binding: b.metadata?.name, err: (err as Error).message })),
      );
    }
    reportAttachments(waypoints);
  }

  const trigger = (): void => {
    if (stopped) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = pass()
      .catch((err: Error) => log('waypoint controller pass failed', { err: err.message }))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          trigger();
        }
      });
  };
  const soon = coalesced(50, trigger);
  const watch = <T extends KubernetesObject>(path: string, list: () => Promise<KubernetesListObject<T>>, labelSelector?: string): ResilientInformer<T> =>
    startResilientInformer<T>(kc, { path, list, onChange: soon, log, ...(labelSelector ? { labelSelector } : {}) });
  const gateways = watch<KubernetesObject>(`/apis/${GATEWAY_GROUP}/${GATEWAY_VERSION}/gateways`, () => custom.listClusterCustomObject(GATEWAYS) as Promise<KubernetesListObject<KubernetesObject>>);
  const deployments = watch<V1Deployment>('/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces({ labelSelector: managed }), managed);
  const services = watch<V1Service>('/api/v1/services', () => core.listServiceForAllNamespaces());
  const namespaces = watch<V1Namespace>('/api/v1/namespaces', () => core.listNamespace());
  // A pod that stops being ready changes only its Deployment's status, which the watch sees; the resync covers a missed event.
  const resync = setInterval(soon, 30_000);
  const synced = Promise.all([gateways.synced, deployments.synced, services.synced, namespaces.synced]).then(() => trigger());
  void ensureClass().catch((err: Error) => log(`GatewayClass ${WAYPOINT_CLASS} not ensured (are the Gateway API CRDs installed?)`, { err: err.message }));
  return {
    synced,
    async stop() {
      stopped = true;
      clearInterval(resync);
      soon.cancel();
      await Promise.all([gateways.stop(), deployments.stop(), services.stop(), namespaces.stop()]);
      while (running !== undefined) await running;
    },
  };
}

