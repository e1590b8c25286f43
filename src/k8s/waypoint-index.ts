import type { KubernetesObject, V1Namespace, V1Pod, V1Service } from '@kubernetes/client-node';
import { attach, waypointFor, waypointRef, type Attachment, type Binder, type TrafficKind, type WaypointGateway, type WaypointRef } from '../gateway/attachment.js';
import { GATEWAY_NAME_LABEL, WAYPOINT_CLASS } from '../gateway/constants.js';

/** A waypoint as the data plane needs it: who it is and where its ready pods are. */
export interface Waypoint extends WaypointRef, WaypointGateway {
  /** its pods run as the ServiceAccount the controller made, named after the Gateway */
  serviceAccount: string;
  /** IPs of its ready pods, in a stable order (round robin walks it) */
  ready: readonly string[];
}

export type WaypointBinding = Exclude<Attachment, { state: 'bound' }> | { state: 'bound'; waypoint: Waypoint };

const isReady = (p: V1Pod): boolean => p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Which Services and workloads use which waypoint (docs/architecture.md §13), built by a
 * pure function from plain API objects and rebuilt when they change, as the
 * cluster index is. A waypoint's pods are those labelled with its Gateway's
 * name that run as its ServiceAccount (the controller makes both), so a pod
 * merely carrying the label is never sent another workload's traffic.
 */
export class WaypointIndex {
  constructor(
    private readonly waypoints: ReadonlyMap<string, Waypoint>,
    private readonly namespaceLabels: ReadonlyMap<string, Readonly<Record<string, string>>>,
    private readonly services: ReadonlyMap<string, WaypointBinding>,
  ) {}

  /** The waypoint traffic to this Service's VIP goes through, or undefined when it has none. */
  forService(namespace: string, name: string): WaypointBinding | undefined {
    return this.services.get(`${namespace}/${name}`);
  }

  /** The waypoint traffic addressed to this pod's IP goes through (waypoint-for workload or all), or undefined. */
  forWorkload(pod: { namespace: string; labels: Readonly<Record<string, string>> }): WaypointBinding | undefined {
    const namespaceLabels = this.namespaceLabels.get(pod.namespace);
    const ref = waypointRef(pod, namespaceLabels);
    return ref === undefined ? undefined : this.bind(ref, 'workload', { namespace: pod.namespace, namespaceLabels });
  }

  /** The waypoint a pod runs as, when it is one of a waypoint's pods. */
  waypointOf(pod: { namespace: string; labels: Readonly<Record<string, string>>; serviceAccount: string }): Waypoint | undefined {
    const name = pod.labels[GATEWAY_NAME_LABEL];
    const w = name === undefined ? undefined : this.waypoints.get(`${pod.namespace}/${name}`);
    return w !== undefined && w.serviceAccount === pod.serviceAccount ? w : undefined;
  }

  /** Every Service that names a waypoint, with how that resolved (admin API, `warren status`). */
  serviceBindings(): Array<{ service: string; binding: WaypointBinding }> {
    return [...this.services].map(([service, binding]) => ({ service, binding }));
  }

  bind(ref: WaypointRef, kind: TrafficKind, from: Binder): WaypointBinding {
    const w = this.waypoints.get(`${ref.namespace}/${ref.name}`);
    const a = attach(ref, kind, w, from);
    return a.state === 'bound' ? { state: 'bound', waypoint: w! } : a;
  }
}

export function buildWaypointIndex(input: { namespaces: readonly V1Namespace[]; services: readonly V1Service[]; pods: readonly V1Pod[]; gateways: readonly KubernetesObject[] }): WaypointIndex {
  const waypoints = new Map<string, Waypoint>();
  for (const g of input.gateways as Array<KubernetesObject & { spec?: { gatewayClassName?: string; listeners?: unknown } }>) {
    if (g.spec?.gatewayClassName !== WAYPOINT_CLASS || g.metadata?.deletionTimestamp !== undefined) continue;
    const namespace = g.metadata?.namespace ?? '';
    const name = g.metadata?.name ?? '';
    waypoints.set(`${namespace}/${name}`, { namespace, name, waypointFor: waypointFor(g.metadata?.labels), listeners: g.spec.listeners, serviceAccount: name, ready: [] });
  }
  const ready = new Map<string, string[]>();
  for (const p of input.pods) {
    const name = p.metadata?.labels?.[GATEWAY_NAME_LABEL];
    const k = `${p.metadata?.namespace}/${name}`;
    const w = name === undefined ? undefined : waypoints.get(k);
    if (w === undefined || (p.spec?.serviceAccountName ?? 'default') !== w.serviceAccount || !isReady(p) || !p.status?.podIP) continue;
    ready.set(k, [...(ready.get(k) ?? []), p.status.podIP]);
  }
  for (const [k, ips] of ready) waypoints.set(k, { ...waypoints.get(k)!, ready: ips.sort() });
  const namespaceLabels = new Map(input.namespaces.map((n) => [n.metadata?.name ?? '', n.metadata?.labels ?? {}]));
  const services = new Map<string, WaypointBinding>();
  const index = new WaypointIndex(waypoints, namespaceLabels, services);
  for (const s of input.services) {
    const namespace = s.metadata?.namespace ?? '';
    const ref = waypointRef({ namespace, labels: s.metadata?.labels ?? {} }, namespaceLabels.get(namespace));
    if (ref !== undefined) services.set(`${namespace}/${s.metadata?.name}`, index.bind(ref, 'service', { namespace, namespaceLabels: namespaceLabels.get(namespace) }));
  }
  return index;
}
