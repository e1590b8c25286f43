import type { KubernetesObject, V1EndpointSlice, V1Namespace, V1Pod, V1Service } from '@kubernetes/client-node';
import { GATEWAY_GROUP, GATEWAY_VERSION } from '../gateway/constants.js';
import { parseAgentNamespace, parseAgentPod } from '../k8s/lean/agent-objects.js';
import { buildClusterIndex, type ClusterIndex } from '../k8s/cluster-index.js';
import type { Watcher } from '../k8s/watcher.js';
import { buildWaypointIndex, type WaypointIndex } from '../k8s/waypoint-index.js';
import { coalesced } from './coalesced.js';

export interface ClusterState {
  index(): ClusterIndex;
  /** which Services and workloads use which waypoint (docs/architecture.md §13) */
  waypoints(): WaypointIndex;
  synced: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The cluster as the data plane sees it: every pod, Service,
 * EndpointSlice, Namespace and waypoint Gateway, watched, and immutable
 * indexes rebuilt (coalesced) after changes, so lookups on the connection
 * path never wait for the API.
 */
export function startClusterState(watch: Watcher): ClusterState {
  let current = buildClusterIndex([], [], []);
  let waypoints = buildWaypointIndex({ namespaces: [], services: [], pods: [], gateways: [] });
  const build = (): void => {
    current = buildClusterIndex(pods.list(), services.list(), slices.list());
    waypoints = buildWaypointIndex({ namespaces: namespaces.list(), services: services.list(), pods: pods.list(), gateways: gateways.list() });
  };
  const rebuild = coalesced(20, build);
  const pods = watch<V1Pod>({ path: '/api/v1/pods', parse: parseAgentPod, onChange: rebuild });
  const services = watch<V1Service>({ path: '/api/v1/services', onChange: rebuild });
  const slices = watch<V1EndpointSlice>({ path: '/apis/discovery.k8s.io/v1/endpointslices', onChange: rebuild });
  const namespaces = watch<V1Namespace>({ path: '/api/v1/namespaces', parse: parseAgentNamespace, onChange: rebuild });
  const gateways = watch<KubernetesObject>({ path: `/apis/${GATEWAY_GROUP}/${GATEWAY_VERSION}/gateways`, onChange: rebuild });
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
