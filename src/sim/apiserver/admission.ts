import { ApiError, type StatusCause } from './api-error.js';
import { groupVersion, type ResourceType } from './resource-types.js';
import type { KubeObject } from './store.js';

/**
 * What kube-apiserver's validation and defaulting do on the way in, for the
 * parts clients notice: names, apiVersion/kind, namespaces, and the defaults
 * controllers and kubectl rely on (pod phase, service ports, namespace phase).
 */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Kinds whose names become DNS labels (hostnames, env var prefixes) are stricter. */
const NAME_RULES: Record<string, { re: RegExp; max: number; what: string }> = {
  Namespace: { re: DNS1123_LABEL, max: 63, what: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character" },
  Service: { re: DNS1035_LABEL, max: 63, what: "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character" },
};
const DEFAULT_NAME_RULE = { re: DNS1123_SUBDOMAIN, max: 253, what: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character" };

export function invalid(type: ResourceType, name: string, causes: StatusCause[]): ApiError {
  const summary = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return new ApiError('Invalid', `${type.kind} "${name}" is invalid: ${summary}`, { name, group: type.group, kind: type.kind, causes });
}

/** Checks the envelope (apiVersion, kind, metadata) against the URL it was sent to. */
export function checkEnvelope(type: ResourceType, body: unknown, urlNamespace: string | undefined): KubeObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('BadRequest', `the body of the request must be a JSON object (a ${type.kind})`);
  }
  const obj = body as KubeObject;
  if (typeof obj.metadata !== 'object' || obj.metadata === null || Array.isArray(obj.metadata)) obj.metadata = {};
  const gv = groupVersion(type);
  if (obj.apiVersion !== undefined && obj.apiVersion !== gv) {
    throw new ApiError('BadRequest', `the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${gv})`);
  }
  if (obj.kind !== undefined && obj.kind !== type.kind) {
    throw new ApiError('BadRequest', `the kind in the data (${String(obj.kind)}) does not match the expected kind (${type.kind})`);
  }
  obj.apiVersion = gv;
  obj.kind = type.kind;
  if (type.namespaced) {
    const ns = obj.metadata.namespace;
    if (ns !== undefined && ns !== '' && urlNamespace !== undefined && ns !== urlNamespace) {
      throw new ApiError('BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    obj.metadata.namespace = urlNamespace ?? ns;
    if (obj.metadata.namespace === undefined || obj.metadata.namespace === '') {
      throw new ApiError('BadRequest', 'a namespace is required for a namespaced object');
    }
  } else {
    delete obj.metadata.namespace;
  }
  return obj;
}

export function checkName(type: ResourceType, obj: KubeObject): void {
  const name = obj.metadata.name;
  if (typeof name !== 'string' || name === '') {
    throw invalid(type, '', [{ field: 'metadata.name', message: 'Required value: name or generateName is required', reason: 'FieldValueRequired' }]);
  }
  const rule = NAME_RULES[type.kind] ?? DEFAULT_NAME_RULE;
  if (name.length > rule.max || !rule.re.test(name)) {
    throw invalid(type, name, [{ field: 'metadata.name', message: `Invalid value: "${name}": ${rule.what}`, reason: 'FieldValueInvalid' }]);
  }
  for (const field of ['labels', 'annotations'] as const) {
    const map = obj.metadata[field];
    if (map === undefined || map === null) continue;
    const bad = typeof map !== 'object' || Array.isArray(map) ? [''] : Object.entries(map).filter(([, v]) => typeof v !== 'string').map(([k]) => k);
    if (bad.length > 0) {
      throw invalid(type, name, bad.map((k) => ({ field: `metadata.${field}${k ? '.' + k : ''}`, message: 'Invalid value: must be a string', reason: 'FieldValueTypeInvalid' })));
    }
  }
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
}

export interface AdmissionContext {
  /** a free ClusterIP, or the requested one if it is free */
  allocateClusterIp(requested: string | undefined): string;
}

/** Defaults applied to a new object, per kind, as the real defaulters do. */
export function defaultOnCreate(type: ResourceType, obj: KubeObject, ctx: AdmissionContext): void {
  if ((obj.metadata.name === undefined || obj.metadata.name === '') && typeof obj.metadata.generateName === 'string') {
    obj.metadata.name = obj.metadata.generateName + randomSuffix();
  }
  checkName(type, obj);
  if (type.group !== '' && type.group !== 'apps') return;
  switch (type.kind) {
    case 'Namespace':
      obj.spec = { finalizers: ['kubernetes'], ...obj.spec };
      obj.status = { phase: 'Active' };
      break;
    case 'Pod':
      obj.spec = { serviceAccountName: 'default', restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', ...obj.spec };
      obj.status = { phase: 'Pending', qosClass: 'BestEffort' };
      break;
    case 'Service': {
      const spec = { type: 'ClusterIP', sessionAffinity: 'None', ...obj.spec };
      spec.ports = (Array.isArray(spec.ports) ? spec.ports : []).map((p: Record<string, unknown>) => ({ protocol: 'TCP', ...p, targetPort: p.targetPort ?? p.port }));
      if (spec.clusterIP !== 'None') {
        spec.clusterIP = ctx.allocateClusterIp(spec.clusterIP);
        spec.clusterIPs = [spec.clusterIP];
      }
      spec.ipFamilies = ['IPv4'];
      obj.spec = spec;
      obj.status = { loadBalancer: {} };
      break;
    }
    case 'Secret':
      obj.type = obj.type || 'Opaque';
      break;
    case 'Deployment':
      obj.spec = { replicas: 1, strategy: { type: 'Recreate' }, ...obj.spec };
      obj.status = {};
      break;
  }
}
