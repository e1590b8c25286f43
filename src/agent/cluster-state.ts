import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1EndpointSlice, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { buildClusterIndex, type ClusterIndex } from '../k8s/cluster-index.js';
import { startResilientInformer } from '../k8s/resilient-informer.js';
import { coalesced } from './coalesced.js';

export interface ClusterState {
  index(): ClusterIndex;
  synced: Promise<void>;
  stop(): Promise<void>;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * The cluster as the data plane sees it: every pod, Service and
 * EndpointSlice, watched, and an immutable index rebuilt (coalesced) after
 * changes, so lookups on the connection path never wait for the API.
 */
export function startClusterState(kc: KubeConfig, log: Log): ClusterState {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  let current = buildClusterIndex([], [], []);
  const rebuild = coalesced(20, () => {
    current = buildClusterIndex(pods.list(), services.list(), slices.list());
  });
  const pods = startResilientInformer<V1Pod>(kc, { path: '/api/v1/pods', list: () => core.listPodForAllNamespaces(), onChange: rebuild, log });
  const services = startResilientInformer<V1Service>(kc, { path: '/api/v1/services', list: () => core.listServiceForAllNamespaces(), onChange: rebuild, log });
  const slices = startResilientInformer<V1EndpointSlice>(kc, {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    list: () => discovery.listEndpointSliceForAllNamespaces(),
    onChange: rebuild,
    log,
  });
  return {
    index: () => current,
    synced: Promise.all([pods.synced, services.synced, slices.synced]).then(() => {
      current = buildClusterIndex(pods.list(), services.list(), slices.list());
    }),
    async stop() {
      rebuild.cancel();
      await Promise.all([pods.stop(), services.stop(), slices.stop()]);
    },
  };
}
