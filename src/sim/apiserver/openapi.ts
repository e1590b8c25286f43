import { ApiError } from './api-error.js';
import type { Registry } from './registry.js';
import type { ResourceType } from './resource-types.js';

/**
 * The OpenAPI v3 index kubectl reads before `apply`/`create`: each group
 * version lists PATCH operations that accept `fieldValidation`, so kubectl
 * leaves validation to this server (required fields, types, CRD schemas)
 * instead of wanting full client-side schemas. No component schemas are
 * published, so kubectl computes strategic merge patches from its built-in
 * types, as it does against servers without OpenAPI.
 */
const gvPath = (t: Pick<ResourceType, 'group' | 'version'>): string => (t.group === '' ? `api/${t.version}` : `apis/${t.group}/${t.version}`);

export function openApiRoot(registry: Registry): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const t of registry.all()) paths[gvPath(t)] = { serverRelativeURL: `/openapi/v3/${gvPath(t)}` };
  return { paths };
}

export function openApiGroupVersion(registry: Registry, path: string): object {
  const types = registry.all().filter((t) => gvPath(t) === path && !t.createOnly);
  if (types.length === 0) throw new ApiError('NotFound', `no OpenAPI document for ${path}`);
  const paths: Record<string, object> = {};
  for (const t of types) {
    const collection = `/${path}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.resource}`;
    paths[`${collection}/{name}`] = {
      patch: {
        'x-kubernetes-group-version-kind': { group: t.group, version: t.version, kind: t.kind },
        parameters: [{ name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } }],
        responses: {},
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}
