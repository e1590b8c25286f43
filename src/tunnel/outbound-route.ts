import type { ClusterIndex, Endpoint, Workload } from '../k8s/cluster-index.js';
import type { SpiffeId } from '../identity/spiffe.js';

export type OutboundRoute =
  | { kind: 'hbone'; target: Endpoint; workload: Workload; identity: SpiffeId; service?: ServiceRef }
  | { kind: 'passthrough'; target: Endpoint; service?: ServiceRef }
  | { kind: 'no-endpoints'; service: ServiceRef };

/**
 * Where a captured outbound connection goes (docs/architecture.md §2), as a pure
 * function: a service VIP first picks a ready endpoint round robin
 * (`cursor` holds each service's position); an enrolled pod behind the
 * target is reached over HBONE expecting its identity; anything else is
 * passthrough. A service without ready endpoints is refused, as kube-proxy
 * rejects it.
 */
/** the Service a connection was addressed to (its VIP) */
export interface ServiceRef {
  namespace: string;
  name: string;
}

export function routeOutbound(index: ClusterIndex, dst: Endpoint, trustDomain: string, cursor: Map<string, number>): OutboundRoute {
  let target = dst;
  let service: ServiceRef | undefined;
  const svc = index.serviceByVip(dst.ip, dst.port);
  if (svc !== undefined) {
    service = { namespace: svc.namespace, name: svc.name };
    if (svc.endpoints.length === 0) return { kind: 'no-endpoints', service };
    const k = `${svc.namespace}/${svc.name}:${svc.port}`;
    const i = cursor.get(k) ?? 0;
    cursor.set(k, (i + 1) % svc.endpoints.length);
    target = svc.endpoints[i % svc.endpoints.length]!;
  }
  const workload = index.workloadByIp(target.ip);
  const extra = service === undefined ? {} : { service };
  if (workload === undefined || !workload.enrolled) return { kind: 'passthrough', target, ...extra };
  return { kind: 'hbone', target, workload, identity: { trustDomain, namespace: workload.namespace, serviceAccount: workload.serviceAccount }, ...extra };
}
