import type { ClusterIndex, Endpoint, ServicePortEntry } from '../k8s/cluster-index.js';
import type { BackendRef } from './route-model.js';

/**
 * Where a request goes once routing chose a Service: its ready endpoints
 * (the node agent's index of EndpointSlices), round robin. The waypoint
 * dials the endpoint pod IP:targetPort itself; its own node agent captures
 * that connection and tunnels it with the waypoint's identity
 * (docs/architecture.md §14).
 */
const byName = new WeakMap<ClusterIndex, Map<string, ServicePortEntry[]>>();
const cursor = new WeakMap<object, number>();

function servicePorts(index: ClusterIndex, namespace: string, name: string): ServicePortEntry[] {
  let map = byName.get(index);
  if (map === undefined) {
    map = new Map();
    for (const e of index.services()) {
      const k = `${e.namespace}/${e.name}`;
      const list = map.get(k) ?? [];
      if (!list.some((x) => x.port === e.port)) list.push(e);
      map.set(k, list);
    }
    byName.set(index, map);
  }
  return map.get(`${namespace}/${name}`) ?? [];
}

/** The Service port a backendRef names (its port, else the port the client dialed). */
export function backendService(index: ClusterIndex, ref: BackendRef, dialedPort: number): ServicePortEntry | undefined {
  const ports = servicePorts(index, ref.namespace, ref.name);
  const port = ref.port ?? dialedPort;
  return ports.find((p) => p.port === port) ?? (ref.port === undefined && ports.length === 1 ? ports[0] : undefined);
}

export function serviceExists(index: ClusterIndex, namespace: string, name: string): boolean {
  return servicePorts(index, namespace, name).length > 0;
}

/** The next endpoint of a list, round robin; undefined when it has none ready. */
export function nextEndpoint(endpoints: readonly Endpoint[]): Endpoint | undefined {
  if (endpoints.length === 0) return undefined;
  const i = cursor.get(endpoints) ?? 0;
  cursor.set(endpoints, (i + 1) % endpoints.length);
  return endpoints[i % endpoints.length];
}
