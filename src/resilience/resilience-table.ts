import type { Gateway, RouteTable } from '../waypoint/route-table.js';
import { effectivePolicy, type DestinationRule } from './destination-rule.js';
import { resolveHost } from './istio-fields.js';
import type { BackendTrafficPolicy, RateLimit } from './traffic-policy.js';
import type { VirtualService } from './virtual-service.js';

/**
 * The resilience policies in force, indexed by the Service they apply to
 * (docs/architecture.md §15). Pure: built from parsed objects, the route
 * table and the cluster domain. Where two objects claim one host the older
 * (then the first by namespace/name) wins and the other is reported, and a
 * VirtualService for a host an HTTPRoute already routes is rejected: Istio
 * calls mixing the two undefined, warren says so instead.
 */
export interface ServiceRef {
  namespace: string;
  name: string;
}

export interface Rejection {
  kind: 'DestinationRule' | 'VirtualService' | 'BackendTrafficPolicy';
  namespace: string;
  name: string;
  reason: string;
  message: string;
}

export interface ResilienceTable {
  destinationRule(s: ServiceRef): DestinationRule | undefined;
  virtualService(s: ServiceRef): VirtualService | undefined;
  /** the bucket for a request: its HTTPRoute's policy, else its Service's, else the waypoint Gateway's */
  rateLimit(service: ServiceRef | undefined, route: ServiceRef | undefined): { key: string; limit: RateLimit } | undefined;
  rejected: readonly Rejection[];
  describe(): ResilienceView;
}

export interface ResilienceView {
  destinationRules: Array<{ rule: string; host: string; subsets: string[]; ports: Record<string, ReturnType<typeof effectivePolicy>> }>;
  virtualServices: Array<{ virtualService: string; host: string; http: Array<{ match: number; fault?: object; route: string[] }> }>;
  rateLimits: Array<{ policy: string; target: string; limit: string }>;
}

const k = (s: ServiceRef): string => `${s.namespace}/${s.name}`;

export function buildResilienceTable(
  input: { destinationRules: readonly DestinationRule[]; virtualServices: readonly VirtualService[]; trafficPolicies: readonly BackendTrafficPolicy[] },
  routes: RouteTable,
  servicePorts: (s: ServiceRef) => readonly number[],
  gateway: Gateway,
  clusterDomain: string,
): ResilienceTable {
  const rejected: Rejection[] = [];
  const byName = <T extends { namespace: string; name: string }>(list: readonly T[]): T[] => [...list].sort((a, b) => (k(a) < k(b) ? -1 : 1));
  const drs = new Map<string, DestinationRule>();
  for (const dr of byName(input.destinationRules)) {
    const host = resolveHost(dr.host, dr.namespace, clusterDomain);
    if (host === undefined) {
      rejected.push({ kind: 'DestinationRule', namespace: dr.namespace, name: dr.name, reason: 'UnsupportedValue', message: `spec.host: "${dr.host}" is not a Service in this cluster (wildcards and external hosts are not supported)` });
      continue;
    }
    const other = drs.get(k(host));
    if (other !== undefined) {
      rejected.push({ kind: 'DestinationRule', namespace: dr.namespace, name: dr.name, reason: 'Conflicted', message: `spec.host: DestinationRule ${k(other)} already applies to ${k(host)}` });
      continue;
    }
    drs.set(k(host), dr);
  }
  const vss = new Map<string, VirtualService>();
  for (const vs of byName(input.virtualServices)) {
    for (const [i, h] of vs.hosts.entries()) {
      const host = resolveHost(h, vs.namespace, clusterDomain);
      const fail = (reason: string, message: string): void => void rejected.push({ kind: 'VirtualService', namespace: vs.namespace, name: vs.name, reason, message });
      if (host === undefined) fail('UnsupportedValue', `spec.hosts.${i}: "${h}" is not a Service in this cluster`);
      else if (servicePorts(host).some((port) => routes.entriesFor({ ...host, port }, false) !== undefined))
        fail('Conflicted', `spec.hosts.${i}: an HTTPRoute already routes ${k(host)}; mixing HTTPRoute and VirtualService for one host is not supported (Istio leaves it undefined)`);
      else if (vss.has(k(host))) fail('Conflicted', `spec.hosts.${i}: VirtualService ${k(vss.get(k(host))!)} already applies to ${k(host)}`);
      else {
        vss.set(k(host), vs);
        continue;
      }
      break;
    }
  }
  const limits = new Map<string, { key: string; limit: RateLimit; policy: string }>();
  for (const p of byName(input.trafficPolicies)) {
    for (const t of p.targets) {
      const target = t.kind === 'Gateway' ? (t.namespace === gateway.namespace && t.name === gateway.name ? 'Gateway' : undefined) : `${t.kind} ${t.namespace}/${t.name}`;
      if (target === undefined) continue;
      if (limits.has(target)) {
        rejected.push({ kind: 'BackendTrafficPolicy', namespace: p.namespace, name: p.name, reason: 'Conflicted', message: `spec.targetRefs: BackendTrafficPolicy ${limits.get(target)!.policy} already limits ${target}` });
        continue;
      }
      // a changed limit is a new bucket, full, as Envoy's filter starts over on a config change
      limits.set(target, { key: `${k(p)} ${target} ${p.rateLimit.requests}/${p.rateLimit.unit}/${p.rateLimit.burst}`, limit: p.rateLimit, policy: k(p) });
    }
  }
  return {
    destinationRule: (s) => drs.get(k(s)),
    virtualService: (s) => vss.get(k(s)),
    rateLimit(service, route) {
      const hit = (route && limits.get(`HTTPRoute ${k(route)}`)) ?? (service && limits.get(`Service ${k(service)}`)) ?? limits.get('Gateway');
      return hit === undefined ? undefined : { key: hit.key, limit: hit.limit };
    },
    rejected,
    describe: () => ({
      destinationRules: [...drs].map(([host, dr]) => ({
        rule: k(dr),
        host,
        subsets: dr.subsets.map((s) => s.name),
        ports: Object.fromEntries(servicePorts({ namespace: host.split('/')[0]!, name: host.split('/')[1]! }).map((port) => [String(port), effectivePolicy(dr, port)])),
      })),
      virtualServices: [...vss].map(([host, vs]) => ({
        virtualService: k(vs),
        host,
        http: vs.http.map((h) => ({ match: h.match.length, ...(h.fault ? { fault: h.fault } : {}), route: h.route.map((r) => `${r.destination.host}${r.destination.subset ? ` subset ${r.destination.subset}` : ''} weight ${r.weight}`) })),
      })),
      rateLimits: [...limits].map(([target, l]) => ({ policy: l.policy, target, limit: `${l.limit.requests}/${l.limit.unit} burst ${l.limit.burst}` })),
    }),
  };
}
