import { ApiError } from './api-error.js';
import type { KubeObject } from './store.js';

/**
 * The `scale` subresource (autoscaling/v1 Scale) of a Deployment, which
 * `kubectl scale` reads and patches: spec.replicas in, the replica count and
 * the label selector (as a string) out.
 */
export function toScale(d: KubeObject): KubeObject {
  const matchLabels = (d.spec?.selector?.matchLabels ?? {}) as Record<string, string>;
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: {
      name: d.metadata.name,
      namespace: d.metadata.namespace,
      uid: d.metadata.uid,
      resourceVersion: d.metadata.resourceVersion,
      creationTimestamp: d.metadata.creationTimestamp,
    },
    spec: { replicas: d.spec?.replicas ?? 1 },
    status: {
      replicas: d.status?.replicas ?? 0,
      selector: Object.entries(matchLabels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    },
  };
}

/** The Deployment with the replicas a (patched or sent) Scale asks for. */
export function fromScale(d: KubeObject, scale: unknown): KubeObject {
  const s = scale as { kind?: unknown; metadata?: { resourceVersion?: unknown }; spec?: { replicas?: unknown } } | null;
  if (typeof s !== 'object' || s === null || (s.kind !== undefined && s.kind !== 'Scale')) throw new ApiError('BadRequest', 'the body of a scale request must be a Scale');
  const replicas = s.spec?.replicas ?? 0;
  if (!Number.isInteger(replicas) || (replicas as number) < 0) {
    throw new ApiError('Invalid', `Scale.autoscaling "${d.metadata.name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`, {
      name: d.metadata.name,
      group: 'autoscaling',
      kind: 'Scale',
      causes: [{ field: 'spec.replicas', message: 'Invalid value: must be greater than or equal to 0', reason: 'FieldValueInvalid' }],
    });
  }
  const rv = s.metadata?.resourceVersion;
  return { ...d, metadata: { ...d.metadata, resourceVersion: typeof rv === 'string' && rv !== '' ? rv : d.metadata.resourceVersion }, spec: { ...d.spec, replicas } };
}
