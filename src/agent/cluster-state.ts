import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1EndpointSlice, type V1Namespace, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { GATEWAY_GROUP, GATEWAY_VERSION } from '../gateway/constants.js';
import { buildClusterIndex, type ClusterIndex } from '../k8s/cluster-index.js';
import { startResilientInformer } from '../k8s/resilient-informer.js';
import { buildWaypointIndex, type WaypointIndex } from '../k8s/waypoint-index.js';
import { coalesced } from './coalesced.js';

export interface ClusterState {
  index(): ClusterIndex;
  /** which Services and workloads use which waypoint (docs/architecture.md §13) */
  waypoints(): WaypointIndex;
  synced: Promise<void>;
  stop(): Promise<void>;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * The cluster as the data plane sees it: every pod, Service,
 * EndpointSlice, Namespace and waypoint Gateway, watched, and immutable
 * indexes rebuilt (coalesced) after changes, so lookups on the connection
 * path never wait for the API.
 */
export function startClusterState(kc: KubeConfig, log: Log): ClusterState {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let current = buildClusterIndex([], [], []);
  let waypoints = buildWaypointIndex({ namespaces: [], services: [], pods: [], gateways: [] });
  const build = (): void => {
    current = buildClusterIndex(pods.list(), services.list(), slices.list());
    waypoints = buildWaypointIndex({ namespaces: namespaces.list(), services: services.list(), pods: pods.list(), gateways: gateways.list() });
  };
  const rebuild = coalesced(20, build);
  const pods = startResilientInformer<V1Pod>(kc, { path: '/api/v1/pods', list: () => core.listPodForAllNamespaces(), onChange: rebuild, log });
  const services = startResilientInformer<V1Service>(kc, { path: '/api/v1/services', list: () => core.listServiceForAllNamespaces(), onChange: rebuild, log });
  const slices = startResilientInformer<V1EndpointSlice>(kc, {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    list: () => discovery.listEndpointSliceForAllNamespaces(),
    onChange: rebuild,
    log,
  });
  const namespaces = startResilientInformer<V1Namespace>(kc, { path: '/api/v1/namespaces', list: () => core.listNamespace(), onChange: rebuild, log });
  const gateways = startResilientInformer<KubernetesObject>(kc, {
    path: `/apis/${GATEWAY_GROUP}/${GATEWAY_VERSION}/gateways`,
    list: () => custom.listClusterCustomObject({ group: GATEWAY_GROUP, version: GATEWAY_VERSION, plural: 'gateways' }) as Promise<KubernetesListObject<KubernetesObject>>,
    onChange: rebuild,
    log,
  });
  const all = [pods, services, slices, namespaces, gateways];
  return {
    index: () => current,
    waypoints: () => waypoints,
    synced: Promise.all(all.map((i) => i.synced)).then(build),
    async stop() {
      rebuild.cancel();
      await Promise.all(all.map((i) => i.stop()));
    },
  };
}
