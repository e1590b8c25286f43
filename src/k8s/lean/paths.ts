/** A pod's API path (names are DNS labels, encoded anyway: they come from CNI requests). */
export function podPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
}

/** The status subresource of a namespaced custom object (route and policy conditions the waypoint reports). */
export function statusPath(api: { group: string; version: string }, plural: string, namespace: string, name: string): string {
  return `/apis/${api.group}/${api.version}/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}/status`;
}
