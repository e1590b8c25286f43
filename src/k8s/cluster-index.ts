import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { USE_WAYPOINT_LABEL } from '../gateway/constants.js';
import { REDIRECTION_ANNOTATION } from './enrollment.js';
import { workloadNames, type WorkloadNames } from './workload-name.js';

/** What the data plane needs to know about a pod anywhere in the cluster (a few hundred bytes). */
export interface Workload extends WorkloadNames {
  uid: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  node: string;
  ips: readonly string[];
  /** what policy selectors match (the pod object's own labels, shared, not copied) */
  labels: Readonly<Record<string, string>>;
  /** its node's agent captures it (annotation warren.io/redirection=enabled): reach it over HBONE */
  enrolled: boolean;
}

export interface Endpoint {
  ip: string;
  port: number;
}

export interface ServicePortEntry {
  namespace: string;
  name: string;
  /** the service port as clients dial it */
  port: number;
  /** ready endpoints for this port, in a stable order (round robin walks it) */
  endpoints: readonly Endpoint[];
  /** warren.io/use-waypoint on the service itself (what it resolves to: waypoint-index.ts) */
  waypoint?: string;
}

const key = (ip: string, port: number): string => `${ip}|${port}`;

/**
 * An immutable, indexed view of pods, Services and EndpointSlices (ztunnel's
 * WorkloadStore, reduced): workloads by IP, services by VIP:port with their
 * ready endpoints. Built from plain API objects by a pure function, rebuilt
 * when they change; lookups are map reads.
 */
export class ClusterIndex {
  constructor(
    private readonly byIp: ReadonlyMap<string, Workload>,
    private readonly byVip: ReadonlyMap<string, ServicePortEntry>,
    private readonly byName: ReadonlyMap<string, Workload>,
  ) {}

  workloadByIp(ip: string): Workload | undefined {
    return this.byIp.get(ip);
  }

  workloadByName(namespace: string, name: string): Workload | undefined {
    return this.byName.get(`${namespace}/${name}`);
  }

  serviceByVip(ip: string, port: number): ServicePortEntry | undefined {
    return this.byVip.get(key(ip, port));
  }

  /** every workload once (a dual-stack pod has two IPs) */
  workloads(): Workload[] {
    return [...new Set(this.byIp.values())];
  }

  /** every service port with the VIPs it is reached on */
  services(): Array<ServicePortEntry & { vips: string[] }> {
    const byEntry = new Map<ServicePortEntry, string[]>();
    for (const [k, e] of this.byVip) byEntry.set(e, [...(byEntry.get(e) ?? []), k.split('|')[0]!]);
    return [...byEntry].map(([e, vips]) => ({ ...e, vips }));
  }

  get size(): { workloads: number; servicePorts: number } {
    return { workloads: new Set(this.byIp.values()).size, servicePorts: this.byVip.size };
  }
}

export function buildClusterIndex(pods: readonly V1Pod[], services: readonly V1Service[], slices: readonly V1EndpointSlice[]): ClusterIndex {
  const byIp = new Map<string, Workload>();
  const byName = new Map<string, Workload>();
  for (const p of pods) {
    const ips = (p.status?.podIPs ?? []).map((x) => x.ip).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
    // Host-network pods share the node's IP: that IP is no single workload.
    if (p.spec?.hostNetwork === true || ips.length === 0 || p.metadata?.uid === undefined) continue;
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    const w: Workload = {
      uid: p.metadata.uid,
      namespace: p.metadata.namespace ?? '',
      name: p.metadata.name ?? '',
      serviceAccount: p.spec?.serviceAccountName ?? 'default',
      node: p.spec?.nodeName ?? '',
      ips,
      labels: p.metadata.labels ?? {},
      enrolled: p.metadata.annotations?.[REDIRECTION_ANNOTATION] === 'enabled',
      ...workloadNames(p),
    };
    for (const ip of ips) byIp.set(ip, w);
    byName.set(`${w.namespace}/${w.name}`, w);
  }

  const slicesByService = new Map<string, V1EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.['kubernetes.io/service-name'];
    if (svc === undefined) continue;
    const k = `${s.metadata?.namespace}/${svc}`;
    slicesByService.set(k, [...(slicesByService.get(k) ?? []), s]);
  }

  const byVip = new Map<string, ServicePortEntry>();
  for (const svc of services) {
    const ns = svc.metadata?.namespace ?? '';
    const name = svc.metadata?.name ?? '';
    const vips = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter((ip) => ip !== 'None' && ip !== '');
    if (vips.length === 0) continue;
    const waypoint = svc.metadata?.labels?.[USE_WAYPOINT_LABEL];
    for (const sp of svc.spec?.ports ?? []) {
      if ((sp.protocol ?? 'TCP') !== 'TCP') continue;
      const endpoints: Endpoint[] = [];
      for (const slice of slicesByService.get(`${ns}/${name}`) ?? []) {
        // EndpointSlice ports are matched to the service port by name (both '' when unnamed).
        const port = slice.ports?.find((p) => (p.name ?? '') === (sp.name ?? '') && (p.protocol ?? 'TCP') === 'TCP')?.port;
        if (port === undefined) continue;
        for (const e of slice.endpoints ?? []) {
          if (e.conditions?.ready === false) continue;
          for (const ip of e.addresses ?? []) endpoints.push({ ip, port });
        }
      }
      endpoints.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
      const entry: ServicePortEntry = { namespace: ns, name, port: sp.port, endpoints, ...(waypoint ? { waypoint } : {}) };
      for (const vip of vips) byVip.set(key(vip, sp.port), entry);
    }
  }
  return new ClusterIndex(byIp, byVip, byName);
}
