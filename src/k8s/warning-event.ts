import { createHash } from 'node:crypto';
import type { CoreV1Event, KubernetesObject } from '@kubernetes/client-node';

/**
 * A Warning Event about an object. Its name is derived from (uid,
 * generation, reason, `key`), so when several reporters (every node's
 * agent, both controller replicas) report the same problem the first
 * create wins and the others get 409 AlreadyExists.
 */
export function warningEvent(
  involved: { apiVersion: string; kind: string; object: KubernetesObject },
  reason: string,
  message: string,
  source: { component: string; reportingComponent: string; instance: string },
  now: Date,
  key = '',
): CoreV1Event {
  const m = involved.object.metadata!;
  const hash = createHash('sha256').update(`${m.uid}|${m.generation ?? 0}|${reason}${key === '' ? '' : `|${key}`}`).digest('hex').slice(0, 16);
  return {
    metadata: { name: `${m.name!.slice(0, 200)}.${hash}`, namespace: m.namespace ?? 'default' },
    involvedObject: { apiVersion: involved.apiVersion, kind: involved.kind, ...(m.namespace ? { namespace: m.namespace } : {}), name: m.name!, ...(m.uid ? { uid: m.uid } : {}), ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}) },
    reason,
    message,
    type: 'Warning',
    source: { component: source.component, host: source.instance },
    reportingComponent: source.reportingComponent,
    reportingInstance: source.instance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}
