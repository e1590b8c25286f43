import type { V1Pod } from '@kubernetes/client-node';
import { decideEnrollment, type EnrollmentPolicy, type SkipReason } from '../k8s/enrollment.js';

/** A pod on this node, as the agent needs it (from the informer cache). */
export interface PodView {
  uid: string;
  namespace: string;
  name: string;
  ips: string[];
  labels: Record<string, string>;
  hostNetwork: boolean;
  /** spec.serviceAccountName: with the namespace, the pod's SPIFFE identity */
  serviceAccount: string;
  phase?: string;
}

export function podView(p: V1Pod): PodView {
  return {
    uid: p.metadata?.uid ?? '',
    namespace: p.metadata?.namespace ?? '',
    name: p.metadata?.name ?? '',
    ips: (p.status?.podIPs ?? []).map((x) => x.ip).filter((ip): ip is string => typeof ip === 'string' && ip !== ''),
    labels: p.metadata?.labels ?? {},
    hostNetwork: p.spec?.hostNetwork === true,
    serviceAccount: p.spec?.serviceAccountName ?? 'default',
    ...(p.status?.phase === undefined ? {} : { phase: p.status.phase }),
  };
}

export interface EnrollmentPlan {
  enroll: PodView[];
  unenroll: string[];
  skipped: Array<{ pod: PodView; reason: SkipReason }>;
}

/**
 * Desired vs actual (ztunnel's state manager, pure): pods that should be
 * enrolled and are not, and enrolled pods (by UID) that should not be any
 * more or are gone. Pods without an IP yet wait for the next round (or come
 * through the CNI plugin, which knows the IPs first).
 */
export function planEnrollment(
  pods: readonly PodView[],
  namespaceLabels: ReadonlyMap<string, Record<string, string>>,
  enrolled: ReadonlySet<string>,
  policy: EnrollmentPolicy,
): EnrollmentPlan {
  const plan: EnrollmentPlan = { enroll: [], unenroll: [], skipped: [] };
  const wanted = new Set<string>();
  for (const pod of pods) {
    const decision = decideEnrollment(namespaceLabels.get(pod.namespace), pod, policy);
    if (!decision.enroll) {
      plan.skipped.push({ pod, reason: decision.reason });
      continue;
    }
    wanted.add(pod.uid);
    if (!enrolled.has(pod.uid) && pod.ips.length > 0) plan.enroll.push(pod);
  }
  for (const uid of enrolled) if (!wanted.has(uid)) plan.unenroll.push(uid);
  return plan;
}

export interface Unenrollment {
  uid: string;
  /** the pod is gone: its netns goes with it, so no rules to remove and no pod to annotate */
  podGone: boolean;
  podRef?: { namespace: string; name: string };
}

export interface ReconcilePlan {
  enroll: PodView[];
  unenroll: Unenrollment[];
  /** enrolled pods whose labels changed: their policies are selected with the new ones */
  relabel: Array<{ uid: string; labels: Record<string, string> }>;
}

/**
 * One reconcile pass as data: the enrollment plan, the unenrollments with
 * what the manager needs to know of each (pod still there or gone), and the
 * enrolled pods (UID → labels as enrolled) whose labels changed.
 */
export function planReconcile(
  pods: readonly PodView[],
  namespaceLabels: ReadonlyMap<string, Record<string, string>>,
  enrolled: ReadonlyMap<string, Record<string, string>>,
  policy: EnrollmentPolicy,
): ReconcilePlan {
  const views = pods.filter((p) => p.uid !== '');
  const plan = planEnrollment(views, namespaceLabels, new Set(enrolled.keys()), policy);
  const byUid = new Map(views.map((p) => [p.uid, p]));
  const relabel = views.flatMap((p) => {
    const current = enrolled.get(p.uid);
    return current === undefined || sameLabels(current, p.labels) ? [] : [{ uid: p.uid, labels: p.labels }];
  });
  const unenroll = plan.unenroll.map((uid): Unenrollment => {
    const pod = byUid.get(uid);
    return pod === undefined ? { uid, podGone: true } : { uid, podGone: false, podRef: pod };
  });
  return { enroll: plan.enroll, unenroll, relabel };
}

export function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
