/** A pod's API path (names are DNS labels, encoded anyway: they come from CNI requests). */
export function podPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
}
