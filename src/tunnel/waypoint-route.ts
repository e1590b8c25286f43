import type { WaypointRef } from '../gateway/attachment.js';
import type { SpiffeId } from '../identity/spiffe.js';
import type { ClusterIndex, Endpoint } from '../k8s/cluster-index.js';
import type { WaypointIndex } from '../k8s/waypoint-index.js';
import type { ServiceRef } from './outbound-route.js';

export type WaypointRoute =
  /** over HBONE to `peer`'s :15008, CONNECT to the address the client dialed, expecting the waypoint's identity */
  | { kind: 'waypoint'; peer: string; identity: SpiffeId; authority: Endpoint; waypoint: WaypointRef; service?: ServiceRef }
  /** the destination has a waypoint that cannot take it now: refused, never sent around it */
  | { kind: 'waypoint-unavailable'; waypoint: WaypointRef; reason: string; service?: ServiceRef };

/** The pod whose captured connection is being routed. */
export interface SourcePod {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  serviceAccount: string;
}

/**
 * Whether a captured outbound connection goes through a waypoint
 * (docs/architecture.md §13), as ztunnel decides it (proxy/outbound.rs,
 * ToServerWaypoint): traffic to a Service VIP whose Service (or namespace)
 * uses a waypoint, or to a pod IP whose pod (or namespace) uses one for
 * workload traffic, is tunneled to a ready pod of that waypoint with the
 * original address as `:authority` and the waypoint's identity expected.
 * Undefined: not through a waypoint (none, a waypoint-for mismatch, which
 * Istio ignores as well and the controller reports, or the source is that
 * waypoint itself: its upstream connections go to the destination, never
 * back into it). A waypoint that does not exist, has no ready pod, or is
 * another namespace's that does not admit the binding (allowedRoutes) fails
 * closed. A pure function; `cursor` holds each waypoint's round-robin position.
 */
export function routeViaWaypoint(index: ClusterIndex, waypoints: WaypointIndex, source: SourcePod, dst: Endpoint, trustDomain: string, cursor: Map<string, number>): WaypointRoute | undefined {
  const svc = index.serviceByVip(dst.ip, dst.port);
  const workload = svc === undefined ? index.workloadByIp(dst.ip) : undefined;
  const binding = svc !== undefined ? waypoints.forService(svc.namespace, svc.name) : workload !== undefined ? waypoints.forWorkload(workload) : undefined;
  if (binding === undefined || binding.state === 'mismatch') return undefined;
  const ref = { namespace: binding.waypoint.namespace, name: binding.waypoint.name };
  const self = waypoints.waypointOf(source);
  if (self !== undefined && self.namespace === ref.namespace && self.name === ref.name) return undefined;
  const service = svc === undefined ? {} : { service: { namespace: svc.namespace, name: svc.name } };
  if (binding.state === 'missing' || binding.state === 'not-allowed') return { kind: 'waypoint-unavailable', waypoint: ref, reason: binding.message, ...service };
  const w = binding.waypoint;
  if (w.ready.length === 0) return { kind: 'waypoint-unavailable', waypoint: ref, reason: `waypoint ${ref.namespace}/${ref.name} has no ready pod`, ...service };
  const k = `waypoint ${ref.namespace}/${ref.name}`;
  const i = cursor.get(k) ?? 0;
  cursor.set(k, (i + 1) % w.ready.length);
  return { kind: 'waypoint', peer: w.ready[i % w.ready.length]!, identity: { trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount }, authority: dst, waypoint: ref, ...service };
}

/**
 * Whether this pod, a waypoint's, should take an HBONE CONNECT to `target`
 * (not one of its own IPs): only when target is a Service VIP or pod IP
 * whose traffic goes through this very waypoint. Anything else is refused
 * (400), so a waypoint pod is no open relay.
 */
export function servedByWaypoint(index: ClusterIndex, waypoints: WaypointIndex, self: SourcePod, target: Endpoint): WaypointRef | undefined {
  const mine = waypoints.waypointOf(self);
  if (mine === undefined) return undefined;
  const svc = index.serviceByVip(target.ip, target.port);
  const workload = svc === undefined ? index.workloadByIp(target.ip) : undefined;
  const binding = svc !== undefined ? waypoints.forService(svc.namespace, svc.name) : workload !== undefined ? waypoints.forWorkload(workload) : undefined;
  if (binding?.state !== 'bound' || binding.waypoint.namespace !== mine.namespace || binding.waypoint.name !== mine.name) return undefined;
  return { namespace: mine.namespace, name: mine.name };
}
