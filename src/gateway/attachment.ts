import { listenerRefusals } from './allowed-routes.js';
import { USE_WAYPOINT_LABEL, USE_WAYPOINT_NAMESPACE_LABEL, WAYPOINT_FOR_LABEL, WAYPOINT_FOR_VALUES, type WaypointFor } from './constants.js';

/** A waypoint named by a label: the Gateway's namespace and name. */
export interface WaypointRef {
  namespace: string;
  name: string;
}

/** What traffic is addressed to: a Service (its VIP) or a workload (a pod IP). */
export type TrafficKind = 'service' | 'workload';

/**
 * Which waypoint an object uses (docs/architecture.md §13), as Istio decides it: the
 * object's own `warren.io/use-waypoint` label beats its namespace's, `none`
 * opts the object out even when its namespace has one, and
 * `warren.io/use-waypoint-namespace` on the same object names another
 * namespace's waypoint (default: the object's namespace). Undefined: no
 * waypoint.
 */
export function waypointRef(object: { namespace: string; labels: Readonly<Record<string, string>> }, namespaceLabels: Readonly<Record<string, string>> | undefined): WaypointRef | undefined {
  const from = object.labels[USE_WAYPOINT_LABEL] !== undefined ? object.labels : namespaceLabels;
  const name = from?.[USE_WAYPOINT_LABEL];
  if (name === undefined || name === '' || name === 'none') return undefined;
  return { namespace: from![USE_WAYPOINT_NAMESPACE_LABEL] || object.namespace, name };
}

/** A Gateway's `warren.io/waypoint-for` label: `service` when absent; undefined when it is not one of the four values. */
export function waypointFor(labels: Readonly<Record<string, string>> | undefined): WaypointFor | undefined {
  const value = labels?.[WAYPOINT_FOR_LABEL];
  if (value === undefined) return 'service';
  return (WAYPOINT_FOR_VALUES as readonly string[]).includes(value) ? (value as WaypointFor) : undefined;
}

export type Attachment =
  | { state: 'bound'; waypoint: WaypointRef }
  /** the label names a Gateway of class warren-waypoint that does not exist: traffic fails closed */
  | { state: 'missing'; waypoint: WaypointRef; message: string }
  /** the waypoint does not take this kind of traffic (waypoint-for): as Istio, it is not used, and that is reported */
  | { state: 'mismatch'; waypoint: WaypointRef; message: string }
  /** another namespace's waypoint whose listeners do not admit the binding namespace: traffic fails closed */
  | { state: 'not-allowed'; waypoint: WaypointRef; message: string };

/** A waypoint Gateway as binding needs it: its waypoint-for label and its listeners (their allowedRoutes consent to other namespaces). */
export interface WaypointGateway {
  waypointFor: WaypointFor | undefined;
  /** `spec.listeners` as the API returns it (unparsed: admitsRoute reads it strictly) */
  listeners: unknown;
}

/** The object whose label names the waypoint: its namespace and that namespace's labels. */
export interface Binder {
  namespace: string;
  namespaceLabels: Readonly<Record<string, string>> | undefined;
}

/**
 * Whether a waypoint takes traffic of `kind` from an object in `from`'s
 * namespace: waypoint-for `service` takes traffic to Service VIPs, `workload`
 * traffic to pod IPs, `all` both, `none` neither. `gateway` is undefined when
 * no waypoint Gateway of that name exists; its `waypointFor` is undefined
 * when the label is invalid (nothing is sent to it then). Another
 * namespace's waypoint needs its consent, as Istio reads a waypoint's
 * listeners: one whose `allowedRoutes.namespaces` admits the binding
 * namespace (`Same`, the default, admits none; `All`; `Selector` by that
 * namespace's labels; src/gateway/allowed-routes.ts). Without it the binding
 * is `not-allowed` and its traffic fails closed: never sent to that waypoint,
 * never around it.
 */
export function attach(ref: WaypointRef, kind: TrafficKind, gateway: WaypointGateway | undefined, from: Binder): Attachment {
  const shown = `${ref.namespace}/${ref.name}`;
  if (gateway === undefined) return { state: 'missing', waypoint: ref, message: `waypoint ${shown} does not exist (no Gateway of class warren-waypoint with that name)` };
  const wf = gateway.waypointFor;
  if (wf === undefined) return { state: 'mismatch', waypoint: ref, message: `waypoint ${shown} has an invalid ${WAYPOINT_FOR_LABEL} label (one of ${WAYPOINT_FOR_VALUES.join(', ')})` };
  if (wf !== 'all' && wf !== kind) return { state: 'mismatch', waypoint: ref, message: `waypoint ${shown} is for ${wf} traffic (${WAYPOINT_FOR_LABEL}=${wf}), not ${kind} traffic: it is not used` };
  if (from.namespace !== ref.namespace) {
    const refused = listenerRefusals({ spec: { listeners: gateway.listeners } }, ref.namespace, from.namespace, from.namespaceLabels);
    if (refused !== undefined) return { state: 'not-allowed', waypoint: ref, message: `waypoint ${shown} does not admit namespace ${from.namespace}: ${refused.join('; ')}; its traffic is refused` };
  }
  return { state: 'bound', waypoint: ref };
}
