import { builtinSchema, type FieldSchema } from './field-schema.js';

/** A kind the API server serves, as discovery describes it. */
export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  resource: string; // plural, as in URLs
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  subresources: string[];
  /** create-only kinds (TokenReview) are not stored */
  createOnly?: boolean;
  /** validates a whole object (CRD schemas); returns field errors */
  validate?: ((obj: Record<string, unknown>) => Array<{ field: string; message: string }>) | undefined;
  /** the fields objects of this kind may carry (fieldValidation); undefined: any */
  fields?: FieldSchema | undefined;
}

export const groupVersion = (t: Pick<ResourceType, 'group' | 'version'>): string => (t.group === '' ? t.version : `${t.group}/${t.version}`);
export const typeKey = (t: Pick<ResourceType, 'group' | 'version' | 'resource'>): string => `${t.group}/${t.version}/${t.resource}`;

const core = (resource: string, kind: string, namespaced: boolean, shortNames: string[] = [], subresources: string[] = []): ResourceType => ({
  group: '',
  version: 'v1',
  resource,
  singular: kind.toLowerCase(),
  kind,
  namespaced,
  shortNames,
  subresources,
});

const BUILTINS: ResourceType[] = [
  core('namespaces', 'Namespace', false, ['ns'], ['status']),
  core('pods', 'Pod', true, ['po'], ['status', 'log', 'exec']),
  core('services', 'Service', true, ['svc'], ['status']),
  core('serviceaccounts', 'ServiceAccount', true, ['sa'], ['token']),
  core('nodes', 'Node', false, ['no'], ['status']),
  core('configmaps', 'ConfigMap', true, ['cm']),
  core('secrets', 'Secret', true),
  core('events', 'Event', true, ['ev']),
  { group: 'apps', version: 'v1', resource: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], subresources: ['status', 'scale'] },
  // Stored, not run (the simulator starts the node agents itself): deploy/ applies to this server as it does to a real one.
  { group: 'apps', version: 'v1', resource: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], subresources: ['status'] },
  { group: 'policy', version: 'v1', resource: 'poddisruptionbudgets', singular: 'poddisruptionbudget', kind: 'PodDisruptionBudget', namespaced: true, shortNames: ['pdb'], subresources: ['status'] },
  ...(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'] as const).map((kind) => ({
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    resource: `${kind.toLowerCase()}s`,
    singular: kind.toLowerCase(),
    kind,
    namespaced: !kind.startsWith('Cluster'),
    shortNames: [],
    subresources: [],
  })),
  { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true, shortNames: [], subresources: [] },
  { group: 'apiextensions.k8s.io', version: 'v1', resource: 'customresourcedefinitions', singular: 'customresourcedefinition', kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], subresources: ['status'] },
  { group: 'authentication.k8s.io', version: 'v1', resource: 'tokenreviews', singular: 'tokenreview', kind: 'TokenReview', namespaced: false, shortNames: [], subresources: [], createOnly: true },
];

export const BUILTIN_TYPES: ResourceType[] = BUILTINS.map((t) => ({ ...t, fields: builtinSchema(t.group, t.kind) }));
