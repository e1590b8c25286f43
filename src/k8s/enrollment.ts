/**
 * Who joins the mesh (docs/architecture.md §4), as a pure function of plain data: the
 * namespace label `warren.io/dataplane-mode=ambient` enrolls its pods, a pod
 * label with the same key wins (`none` opts out), host-network pods and
 * excluded namespaces never do.
 */
export const DATAPLANE_MODE_LABEL = 'warren.io/dataplane-mode';
export const REDIRECTION_ANNOTATION = 'warren.io/redirection';
export const REDIRECTION_REASON_ANNOTATION = 'warren.io/redirection-reason';

export type SkipReason = 'excluded-namespace' | 'host-network' | 'opted-out' | 'not-labeled' | 'terminal';

export type EnrollmentDecision = { enroll: true } | { enroll: false; reason: SkipReason };

export interface PodFacts {
  namespace: string;
  labels: Record<string, string>;
  hostNetwork: boolean;
  phase?: string;
}

export interface EnrollmentPolicy {
  excludedNamespaces: ReadonlySet<string>;
}

export function decideEnrollment(namespaceLabels: Record<string, string> | undefined, pod: PodFacts, policy: EnrollmentPolicy): EnrollmentDecision {
  if (policy.excludedNamespaces.has(pod.namespace)) return { enroll: false, reason: 'excluded-namespace' };
  if (pod.hostNetwork) return { enroll: false, reason: 'host-network' };
  if (pod.phase === 'Succeeded' || pod.phase === 'Failed') return { enroll: false, reason: 'terminal' };
  const podMode = pod.labels[DATAPLANE_MODE_LABEL];
  const mode = podMode ?? namespaceLabels?.[DATAPLANE_MODE_LABEL];
  if (mode === 'none') return { enroll: false, reason: 'opted-out' };
  if (mode !== 'ambient') return { enroll: false, reason: 'not-labeled' };
  return { enroll: true };
}

/** The CNI plugin's shortcut: pods in excluded namespaces pass without asking the agent. */
export function isExcludedNamespace(namespace: string, policy: EnrollmentPolicy): boolean {
  return policy.excludedNamespaces.has(namespace);
}
