import { ApiError } from './api-error.js';

export type Route =
  | { kind: 'api' }
  | { kind: 'apis' }
  | { kind: 'version' }
  | { kind: 'health' }
  | { kind: 'openapi'; path: string }
  | { kind: 'groupVersion'; group: string; version: string }
  | { kind: 'resource'; group: string; version: string; namespace?: string; resource: string; name?: string; subresource?: string };

/**
 * Maps a request path to what it addresses. `/api/v1/namespaces/x/pods` is a
 * namespaced collection while `/api/v1/namespaces/x/status` is the namespace's
 * own subresource: `isNamespaced` (from the registry) tells them apart.
 */
export function parseRoute(pathname: string, isNamespaced: (group: string, version: string, resource: string) => boolean): Route {
  const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (parts.length === 0) throw new ApiError('NotFound', 'the server could not find the requested resource');
  if (parts[0] === 'version') return { kind: 'version' };
  if (parts[0] === 'openapi') return { kind: 'openapi', path: parts.slice(1).join('/') };
  if (['healthz', 'readyz', 'livez'].includes(parts[0]!)) return { kind: 'health' };
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api') {
    if (parts.length === 1) return { kind: 'api' };
    group = '';
    version = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis') {
    if (parts.length === 1) return { kind: 'apis' };
    if (parts.length === 2) throw new ApiError('NotFound', `the server could not find the requested resource (group ${parts[1]})`);
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else {
    throw new ApiError('NotFound', 'the server could not find the requested resource');
  }
  if (rest.length === 0) return { kind: 'groupVersion', group, version };
  let namespace: string | undefined;
  // Only the core group's namespaces have subresources of their own (status, finalize): anything else
  // under namespaces/NS/ is a namespaced resource, served or not (an unserved one is then named in the 404).
  const namespaceSubresource = group === '' && !isNamespaced(group, version, rest[2] ?? '') && ['status', 'finalize'].includes(rest[2] ?? '');
  if (rest[0] === 'namespaces' && rest.length >= 3 && !namespaceSubresource) {
    namespace = rest[1]!;
    rest = rest.slice(2);
  }
  if (rest.length > 3) throw new ApiError('NotFound', 'the server could not find the requested resource');
  const [resource, name, subresource] = rest as [string, string | undefined, string | undefined];
  return {
    kind: 'resource',
    group,
    version,
    resource,
    ...(namespace === undefined ? {} : { namespace }),
    ...(name === undefined ? {} : { name }),
    ...(subresource === undefined ? {} : { subresource }),
  };
}
