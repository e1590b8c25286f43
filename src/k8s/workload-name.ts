import type { V1Pod } from '@kubernetes/client-node';

/** How Istio names a pod in telemetry: its workload, canonical service and revision. */
export interface WorkloadNames {
  /** the owning controller (a Deployment for a ReplicaSet's pod), else the pod */
  workload: string;
  /** service.istio.io/canonical-name, app.kubernetes.io/name, app, else the workload */
  app: string;
  /** service.istio.io/canonical-revision, app.kubernetes.io/version, version, else "latest" */
  version: string;
}

/**
 * Istio's rules (pkg/kube/labels canonical service, and the workload name
 * used by ztunnel), so Grafana/Kiali queries on `*_workload` and
 * `*_canonical_service` group pods the same way they do with Istio.
 */
export function workloadNames(pod: Pick<V1Pod, 'metadata'>): WorkloadNames {
  const meta = pod.metadata ?? {};
  const labels = meta.labels ?? {};
  const owner = (meta.ownerReferences ?? []).find((o) => o.controller === true);
  let workload = meta.name ?? (meta.generateName ?? '').replace(/-$/, '');
  if (owner !== undefined) {
    workload = owner.name;
    const hash = labels['pod-template-hash'];
    // A ReplicaSet made by a Deployment is named <deployment>-<pod-template-hash>.
    if (owner.kind === 'ReplicaSet' && hash !== undefined && owner.name.endsWith(`-${hash}`)) workload = owner.name.slice(0, -hash.length - 1);
    // A Job made by a CronJob is named <cronjob>-<scheduled time in minutes>.
    else if (owner.kind === 'Job' && /-\d{8,}$/.test(owner.name)) workload = owner.name.replace(/-\d{8,}$/, '');
  }
  const app = labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels['app'] ?? workload;
  const version = labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels['version'] ?? 'latest';
  return { workload, app, version };
}
