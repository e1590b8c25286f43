import { groupVersion, type ResourceType } from './resource-types.js';
import type { Registry } from './registry.js';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export function apiVersions(serverAddress: string): object {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

export function apiGroupList(registry: Registry): object {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...registry.groups()].map(([name, versions]) => {
      const list = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
      return { name, versions: list, preferredVersion: list[0] };
    }),
  };
}

function entries(t: ResourceType): object[] {
  const main = {
    name: t.resource,
    singularName: t.singular,
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: t.createOnly ? ['create'] : VERBS,
    ...(t.shortNames.length > 0 ? { shortNames: t.shortNames } : {}),
  };
  const subs = t.subresources.map((s) => ({
    name: `${t.resource}/${s}`,
    singularName: '',
    namespaced: t.namespaced,
    kind: s === 'token' ? 'TokenRequest' : s === 'scale' ? 'Scale' : s === 'log' ? 'Pod' : s === 'exec' ? 'PodExecOptions' : t.kind,
    verbs: s === 'token' ? ['create'] : s === 'log' ? ['get'] : s === 'exec' ? ['create', 'get'] : ['get', 'patch', 'update'],
    ...(s === 'token' ? { group: 'authentication.k8s.io', version: 'v1' } : s === 'scale' ? { group: 'autoscaling', version: 'v1' } : {}),
  }));
  return [main, ...subs];
}

export function apiResourceList(registry: Registry, group: string, version: string): object | undefined {
  const types = registry.all().filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion({ group, version }), resources: types.flatMap(entries) };
}
