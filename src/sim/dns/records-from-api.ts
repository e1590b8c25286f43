import { isIP } from 'node:net';
import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { startResilientInformer } from '../../k8s/resilient-informer.js';
import { CLUSTER_DOMAIN } from '../topology/plan.js';
import { buildClusterRecords, type ClusterEndpoints, type ClusterRecordData, type ClusterRecords, type ClusterService } from './cluster-records.js';
import type { LookupResult } from './dns-message.js';

export interface WatchedClusterRecords {
  lookup(qname: string, qtype: number): LookupResult;
  stop(): Promise<void>;
}

export interface WatchOptions {
  domain?: string;
  /** client-node informers stop on a connection error; they are started again after this long */
  restartDelayMs?: number;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** A Service as DNS sees it, or undefined when the object is not one it can serve (malformed, ExternalName). */
export function serviceFromObject(obj: unknown): ClusterService | undefined {
  if (!isRecord(obj) || !isRecord(obj.metadata) || !isRecord(obj.spec)) return undefined;
  const { name, namespace } = obj.metadata;
  if (!nonEmpty(name) || !nonEmpty(namespace)) return undefined;
  // ExternalName Services are CNAMEs to names outside the cluster, which the simulator does not serve.
  if (obj.spec.type === 'ExternalName') return undefined;
  const ip = obj.spec.clusterIP;
  if (ip === 'None') return { name, namespace, headless: true };
  return typeof ip === 'string' && isIP(ip) !== 0 ? { name, namespace, clusterIP: ip, headless: false } : { name, namespace, headless: false };
}

/** The ready addresses of an EndpointSlice; `ready` unset counts as ready, as the API documents. */
export function endpointsFromObject(obj: unknown): ClusterEndpoints | undefined {
  if (!isRecord(obj) || !isRecord(obj.metadata)) return undefined;
  const { namespace, labels } = obj.metadata;
  const service = isRecord(labels) ? labels[SERVICE_NAME_LABEL] : undefined;
  if (!nonEmpty(namespace) || !nonEmpty(service)) return undefined;
  if (obj.addressType !== 'IPv4' && obj.addressType !== 'IPv6') return undefined;
  const addresses: string[] = [];
  for (const ep of Array.isArray(obj.endpoints) ? obj.endpoints : []) {
    if (!isRecord(ep) || !Array.isArray(ep.addresses)) continue;
    if (isRecord(ep.conditions) && ep.conditions.ready === false) continue;
    for (const a of ep.addresses) if (typeof a === 'string' && isIP(a) !== 0) addresses.push(a);
  }
  return { service, namespace, addresses };
}

export function recordDataFromObjects(services: readonly unknown[], slices: readonly unknown[], domain: string): ClusterRecordData {
  return {
    services: services.map(serviceFromObject).filter((s): s is ClusterService => s !== undefined),
    endpoints: slices.map(endpointsFromObject).filter((e): e is ClusterEndpoints => e !== undefined),
    domain,
  };
}

/**
 * Keeps cluster DNS answers current from Services and EndpointSlices. The
 * records are rebuilt lazily on the first lookup after a change, so a burst
 * of watch events costs one rebuild.
 */
export function watchClusterRecords(kc: KubeConfig, options: WatchOptions = {}): WatchedClusterRecords {
  const { domain = CLUSTER_DOMAIN, restartDelayMs = 1000, log = () => undefined } = options;
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  let records: ClusterRecords | undefined;
  const invalidate = (): void => {
    records = undefined;
  };
  const services = startResilientInformer<V1Service>(kc, { path: '/api/v1/services', list: () => core.listServiceForAllNamespaces(), onChange: invalidate, restartDelayMs, log });
  const slices = startResilientInformer<V1EndpointSlice>(kc, {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    list: () => discovery.listEndpointSliceForAllNamespaces(),
    onChange: invalidate,
    restartDelayMs,
    log,
  });

  return {
    lookup(qname, qtype) {
      records ??= buildClusterRecords(recordDataFromObjects(services.list(), slices.list(), domain));
      return records.lookup(qname, qtype);
    },
    async stop() {
      await Promise.all([services.stop(), slices.stop()]);
    },
  };
}
