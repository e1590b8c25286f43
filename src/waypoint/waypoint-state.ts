import type { KubernetesObject, V1Namespace } from '@kubernetes/client-node';
import { coalesced } from '../agent/coalesced.js';
import { startClusterState } from '../agent/cluster-state.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import { admitsRoute, type RouteAdmission } from '../gateway/allowed-routes.js';
import { waypointRef } from '../gateway/attachment.js';
import type { KubeApi } from '../k8s/lean/api-client.js';
import { parseAgentNamespace } from '../k8s/lean/agent-objects.js';
import { statusPath } from '../k8s/lean/paths.js';
import type { ResilientInformer } from '../k8s/resilient-informer.js';
import type { Watcher } from '../k8s/watcher.js';
import { policyTargets, waypointPolicy, type TargetedPolicy } from './l7-authorization.js';
import { parseRequestAuthentication, type RequestAuthentication } from './request-authentication.js';
import { parseGrpcRoute, parseHttpRoute, type Route } from './route-model.js';
import { buildRouteTable, isGatewayParent, isServiceParent, type Gateway, type RouteTable } from './route-table.js';
import { serviceExists } from './upstream.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;
interface Condition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
  observedGeneration?: number;
}

/** What the request path reads: immutable snapshots, replaced when the API objects change. */
export interface WaypointState {
  index(): ClusterIndex;
  routes(): RouteTable;
  authorizationPolicies(): readonly TargetedPolicy[];
  requestAuthentications(): readonly RequestAuthentication[];
  synced: Promise<void>;
  stop(): Promise<void>;
}

const GATEWAY_API = { group: 'gateway.networking.k8s.io', version: 'v1' };
const SECURITY = { group: 'security.warren.io', version: 'v1' };
export const WAYPOINT_CONTROLLER = 'warren.io/waypoint';

/**
 * The waypoint's view of the API (docs/architecture.md §14):
 * Services/EndpointSlices/Pods as the node agent indexes them, HTTPRoutes and
 * GRPCRoutes compiled into one route table, and the AuthorizationPolicies and
 * RequestAuthentications that attach by targetRefs. A route that stops
 * parsing keeps its last good version in the table and its status says why;
 * the waypoint writes route status (Accepted, ResolvedRefs) for the parents
 * it serves. It reads and writes through the node agent's lean client
 * (src/k8s/lean/), not @kubernetes/client-node (docs/architecture.md §4).
 */
export function startWaypointState(api: KubeApi, watch: Watcher, gateway: Gateway, log: Log): WaypointState {
  const cluster = startClusterState(watch);
  const lastGood = new Map<string, Route>();
  const reported = new Map<string, string>();
  let table = buildRouteTable([], gateway);
  let authz: TargetedPolicy[] = [];
  let authn: RequestAuthentication[] = [];

  /** A Service is ours when its label (or else its namespace's) names this waypoint (src/gateway/attachment.ts). */
  const servesService = (namespace: string, name: string): boolean => {
    const ns = namespaces.list().find((n) => n.metadata?.name === namespace);
    const ref = waypointRef({ namespace, labels: serviceLabels.get(`${namespace}/${name}`) ?? {} }, ns?.metadata?.labels);
    return ref !== undefined && ref.name === gateway.name && ref.namespace === gateway.namespace;
  };
  const serviceLabels = new Map<string, Record<string, string>>();

  const writeStatus = (plural: string, group: typeof GATEWAY_API, obj: KubernetesObject, status: object): void => {
    const m = obj.metadata!;
    const id = `${plural}/${m.namespace}/${m.name}`;
    // compared without the timestamps, so an unchanged status is not written again
    const key = JSON.stringify(status, (k, v: unknown) => (k === 'lastTransitionTime' ? undefined : v));
    if (reported.get(id) === key) return;
    reported.set(id, key);
    void api
      .mergePatch(statusPath(group, plural, m.namespace!, m.name!), { status })
      .catch((err: Error) => {
        reported.delete(id);
        log('status update failed', { object: id, err: err.message });
      });
  };
  const stamp = (c: Condition, generation: number | undefined): Condition & { lastTransitionTime: string } => ({ ...c, ...(generation !== undefined ? { observedGeneration: generation } : {}), lastTransitionTime: new Date().toISOString() });

  /** `conditions` for the parents this waypoint serves; `gatewayConditions`, when given, for the waypoint Gateway parent instead. */
  const routeStatus = (plural: string, obj: KubernetesObject, conditions: Condition[], gatewayConditions?: Condition[]): void => {
    const spec = (obj as { spec?: { parentRefs?: unknown } }).spec;
    const refs = Array.isArray(spec?.parentRefs) ? (spec.parentRefs as Array<Record<string, unknown>>) : [];
    const ns = obj.metadata!.namespace!;
    const mine = refs.filter((r) => {
      const p = { group: (r.group as string | undefined) ?? GATEWAY_API.group, kind: (r.kind as string | undefined) ?? 'Gateway', namespace: (r.namespace as string | undefined) ?? ns, name: String(r.name) };
      return isGatewayParent(p, gateway) || (isServiceParent(p) && servesService(p.namespace, p.name));
    });
    if (mine.length === 0) return;
    const others = ((obj as { status?: { parents?: Array<{ controllerName?: string }> } }).status?.parents ?? []).filter((p) => p.controllerName !== WAYPOINT_CONTROLLER);
    const generation = obj.metadata?.generation;
    const isGateway = (r: Record<string, unknown>): boolean => ((r.kind as string | undefined) ?? 'Gateway') === 'Gateway';
    const conditionsOf = (r: Record<string, unknown>): Condition[] => (gatewayConditions !== undefined && isGateway(r) ? gatewayConditions : conditions);
    writeStatus(plural, GATEWAY_API, obj, { parents: [...others, ...mine.map((parentRef) => ({ parentRef, controllerName: WAYPOINT_CONTROLLER, conditions: conditionsOf(parentRef).map((c) => stamp(c, generation)) }))] });
  };

  /**
   * Gateway API consent (src/gateway/allowed-routes.ts): a route the waypoint
   * Gateway's listeners do not admit loses that parent; its Service parents
   * (GAMMA) are unaffected.
   */
  const attachable = (route: Route): { route: Route; admission: RouteAdmission } => {
    if (!route.parentRefs.some((p) => isGatewayParent(p, gateway))) return { route, admission: { allowed: true } };
    const ns = namespaces.list().find((n) => n.metadata?.name === route.namespace);
    const admission = admitsRoute(ownGateway(), gateway.namespace, route.namespace, ns === undefined ? undefined : (ns.metadata?.labels ?? {}));
    return { route: admission.allowed ? route : { ...route, parentRefs: route.parentRefs.filter((p) => !isGatewayParent(p, gateway)) }, admission };
  };

  const compileRoutes = (informer: ResilientInformer<KubernetesObject>, plural: string, parse: (o: unknown) => Route, index: ClusterIndex): Route[] =>
    informer.list().flatMap((obj) => {
      const id = `${plural}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
      try {
        const parsed = parse(obj);
        lastGood.set(id, parsed);
        const { route, admission } = attachable(parsed);
        const missing = route.rules.flatMap((r) => r.backendRefs).find((b) => b.kind !== 'Service' || !['', 'core'].includes(b.group) || !serviceExists(index, b.namespace, b.name));
        const resolved: Condition = missing === undefined
          ? { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all backendRefs resolved' }
          : missing.kind !== 'Service'
            ? { type: 'ResolvedRefs', status: 'False', reason: 'InvalidKind', message: `backendRef ${missing.kind} ${missing.namespace}/${missing.name}: only Services are supported` }
            : { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: `backendRef Service ${missing.namespace}/${missing.name} not found: its share of requests gets 500` };
        const refused: Condition[] | undefined = admission.allowed ? undefined : [{ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners', message: `${admission.message}; its rules are not used for this Gateway` }, resolved];
        routeStatus(plural, obj, [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'compiled into the waypoint route table' }, resolved], refused);
        return [route];
      } catch (err) {
        const kept = lastGood.get(id);
        const message = `${(err as Error).message}; ${kept ? `the waypoint keeps serving generation ${kept.generation} (the last valid one)` : 'the route is not served'}`;
        log('route invalid', { route: id, reason: message });
        routeStatus(plural, obj, [{ type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message }]);
        return kept ? [attachable(kept).route] : [];
      }
    });

  const policyStatus = (plural: string, obj: KubernetesObject, condition: Condition, targetsMe: boolean): void => {
    if (!targetsMe) return;
    writeStatus(plural, SECURITY, obj, { conditions: [stamp(condition, obj.metadata?.generation)] });
  };
  const targetsMe = (targets: readonly { kind: string; namespace: string; name: string }[], namespace: string): boolean =>
    targets.length === 0 ? namespace === gateway.namespace : targets.some((t) => (t.kind === 'Gateway' ? t.namespace === gateway.namespace && t.name === gateway.name : servesService(t.namespace, t.name)));

  const rebuild = coalesced(20, () => {
    const index = cluster.index();
    serviceLabels.clear();
    for (const s of services.list()) serviceLabels.set(`${s.metadata?.namespace}/${s.metadata?.name}`, s.metadata?.labels ?? {});
    const live = new Set([...httpRoutes.list().map((o) => `httproutes/${o.metadata?.namespace}/${o.metadata?.name}`), ...grpcRoutes.list().map((o) => `grpcroutes/${o.metadata?.namespace}/${o.metadata?.name}`)]);
    for (const id of lastGood.keys()) if (!live.has(id)) lastGood.delete(id);
    table = buildRouteTable([...compileRoutes(httpRoutes, 'httproutes', parseHttpRoute, index), ...compileRoutes(grpcRoutes, 'grpcroutes', parseGrpcRoute, index)], gateway);
    authz = authorizationPolicies.list().flatMap((obj): TargetedPolicy[] => {
      const held = waypointPolicy(obj);
      if (held === undefined) return []; // a node agent's policy
      const mine = targetsMe(held.targets, obj.metadata?.namespace ?? '');
      if (held.error === undefined) policyStatus('authorizationpolicies', obj, { type: 'Accepted', status: 'True', reason: 'Accepted', message: `enforced by waypoint ${gateway.namespace}/${gateway.name}` }, mine);
      else policyStatus('authorizationpolicies', obj, { type: 'Accepted', status: 'False', reason: 'Invalid', message: `${held.error}; the waypoint denies every request it applies to until fixed` }, mine);
      return held.policy === undefined ? [] : [held.policy];
    });
    authn = requestAuthentications.list().flatMap((obj): RequestAuthentication[] => {
      const ns = obj.metadata?.namespace ?? '';
      try {
        const ra = parseRequestAuthentication(obj);
        policyStatus('requestauthentications', obj, { type: 'Accepted', status: 'True', reason: 'Accepted', message: `enforced by waypoint ${gateway.namespace}/${gateway.name}` }, targetsMe(ra.targets, ns));
        return [ra];
      } catch (err) {
        // Fail closed: a RequestAuthentication that cannot be read rejects every token (401) where it may apply.
        let targets: ReturnType<typeof policyTargets> = [];
        try {
          targets = policyTargets(obj);
        } catch {
          // unreadable targets: the stand-in applies to the whole namespace through this waypoint
        }
        policyStatus('requestauthentications', obj, { type: 'Accepted', status: 'False', reason: 'Invalid', message: `${(err as Error).message}; requests with a token get 401 until fixed` }, targetsMe(targets, ns));
        return [{ namespace: ns, name: obj.metadata?.name ?? '', targets, rules: [], invalid: true }];
      }
    });
  });

  const watchCustom = (g: typeof GATEWAY_API, plural: string): ResilientInformer<KubernetesObject> => watch({ path: `/apis/${g.group}/${g.version}/${plural}`, onChange: rebuild });
  const gateways = watchCustom(GATEWAY_API, 'gateways');
  const ownGateway = (): KubernetesObject | undefined => gateways.list().find((g) => g.metadata?.namespace === gateway.namespace && g.metadata?.name === gateway.name);
  const httpRoutes = watchCustom(GATEWAY_API, 'httproutes');
  const grpcRoutes = watchCustom(GATEWAY_API, 'grpcroutes');
  const authorizationPolicies = watchCustom(SECURITY, 'authorizationpolicies');
  const requestAuthentications = watchCustom(SECURITY, 'requestauthentications');
  const namespaces = watch<V1Namespace>({ path: '/api/v1/namespaces', parse: parseAgentNamespace, onChange: rebuild });
  const services = watch<KubernetesObject>({ path: '/api/v1/services', onChange: rebuild });
  const informers = [gateways, httpRoutes, grpcRoutes, authorizationPolicies, requestAuthentications, namespaces, services];
  // Endpoint changes can resolve a backendRef: recompile shortly after the index moves.
  const clusterTick = setInterval(() => {
    if (cluster.index() !== lastIndex) {
      lastIndex = cluster.index();
      rebuild();
    }
  }, 200);
  let lastIndex = cluster.index();
  return {
    index: () => cluster.index(),
    routes: () => table,
    authorizationPolicies: () => authz,
    requestAuthentications: () => authn,
    synced: Promise.all([cluster.synced, ...informers.map((i) => i.synced)]).then(
      () =>
        new Promise<void>((resolve) => {
          rebuild();
          setTimeout(resolve, 40);
        }),
    ),
    async stop() {
      clearInterval(clusterTick);
      rebuild.cancel();
      await Promise.all([cluster.stop(), ...informers.map((i) => i.stop())]);
    },
  };
}
