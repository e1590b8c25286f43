import type { Workload } from '../k8s/cluster-index.js';
import type { ConnectionMeta } from './connection-observer.js';

/**
 * The label set of Istio's TCP metrics (Istio "Standard Metrics"), in the
 * order Istio documents it, so dashboards and recording rules written for
 * Istio select the same series.
 */
export const ISTIO_TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

export type IstioTcpLabels = Record<(typeof ISTIO_TCP_LABELS)[number], string>;

/** Istio's value for anything the proxy cannot know (e.g. a caller outside the mesh). */
const UNKNOWN = 'unknown';
/** Istio's default cluster ID for a single cluster */
const CLUSTER_ID = 'Kubernetes';

/**
 * Labels for one connection. Values come from workloads, namespaces,
 * service accounts and services — never IPs or ports — so the number of
 * series is bounded by pairs of workloads, not by traffic.
 */
export function istioTcpLabels(meta: ConnectionMeta, src: Workload | undefined, dst: Workload | undefined, clusterDomain: string): IstioTcpLabels {
  const service = meta.service;
  return {
    reporter: meta.reporter,
    source_workload: src?.workload ?? UNKNOWN,
    source_workload_namespace: src?.namespace ?? UNKNOWN,
    source_principal: meta.source.principal ?? UNKNOWN,
    source_app: src?.app ?? UNKNOWN,
    source_version: src?.version ?? UNKNOWN,
    source_canonical_service: src?.app ?? UNKNOWN,
    source_canonical_revision: src?.version ?? UNKNOWN,
    source_cluster: src === undefined ? UNKNOWN : CLUSTER_ID,
    destination_workload: dst?.workload ?? UNKNOWN,
    destination_workload_namespace: dst?.namespace ?? UNKNOWN,
    destination_principal: meta.destination.principal ?? UNKNOWN,
    destination_app: dst?.app ?? UNKNOWN,
    destination_version: dst?.version ?? UNKNOWN,
    destination_service: service === undefined ? UNKNOWN : `${service.name}.${service.namespace}.svc.${clusterDomain}`,
    destination_service_name: service?.name ?? UNKNOWN,
    destination_service_namespace: service?.namespace ?? UNKNOWN,
    destination_canonical_service: dst?.app ?? UNKNOWN,
    destination_canonical_revision: dst?.version ?? UNKNOWN,
    destination_cluster: dst === undefined ? UNKNOWN : CLUSTER_ID,
    request_protocol: 'tcp',
    response_flags: '-',
    connection_security_policy: meta.security === 'mtls' ? 'mutual_tls' : 'none',
  };
}
