import { createHash } from 'node:crypto';
import type { KubeObject } from '../apiserver/store.js';
import { isPodReady } from './pod-conditions.js';

export interface DeploymentActions {
  create: KubeObject[];
  delete: string[];
  status: Record<string, unknown>;
}

/** The pod-template-hash label: equal templates give equal hashes, as the ReplicaSet controller names them. */
export function templateHash(template: unknown): string {
  return createHash('sha256').update(JSON.stringify(template ?? {})).digest('hex').slice(0, 10);
}

const suffix = (): string => Math.random().toString(36).slice(2, 7).padEnd(5, 'x');

/**
 * Deployment → pods with the Recreate strategy: pods of an old template go
 * first, then pods of the current one are created up to `replicas`; extra
 * pods are removed newest first. Pods are owned by the Deployment directly
 * (there is no ReplicaSet in the simulator), so deleting it cascades.
 */
export function reconcileDeployment(deploy: KubeObject, owned: KubeObject[]): DeploymentActions {
  const replicas = Number.isInteger(deploy.spec?.replicas) ? (deploy.spec.replicas as number) : 1;
  const template = deploy.spec?.template ?? {};
  const hash = templateHash(template);
  const live = owned.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
  const current = live.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash);
  const stale = live.filter((p) => p.metadata.labels?.['pod-template-hash'] !== hash);
  const finished = owned.filter((p) => !live.includes(p));
  const actions: DeploymentActions = { create: [], delete: finished.map((p) => p.metadata.name), status: {} };
  if (stale.length > 0) {
    actions.delete.push(...stale.map((p) => p.metadata.name));
  } else if (current.length > replicas) {
    const newestFirst = [...current].sort((a, b) => String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)));
    actions.delete.push(...newestFirst.slice(0, current.length - replicas).map((p) => p.metadata.name));
  } else {
    for (let i = current.length; i < replicas; i++) {
      const name = `${deploy.metadata.name}-${hash.slice(0, 10)}-${suffix()}`;
      actions.create.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...(template.metadata ?? {}),
          name,
          namespace: deploy.metadata.namespace,
          labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name, uid: deploy.metadata.uid, controller: true, blockOwnerDeletion: true }],
        },
        spec: structuredClone(template.spec ?? {}),
      });
    }
  }
  const ready = current.filter(isPodReady).length;
  actions.status = {
    observedGeneration: deploy.metadata.generation,
    replicas: live.length,
    updatedReplicas: current.length,
    readyReplicas: ready,
    availableReplicas: ready,
    ...(live.length - ready > 0 ? { unavailableReplicas: live.length - ready } : {}),
    conditions: [
      {
        type: 'Available',
        status: ready >= replicas ? 'True' : 'False',
        reason: ready >= replicas ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
        message: ready >= replicas ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.',
      },
    ],
  };
  return actions;
}
