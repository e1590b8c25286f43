import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';
import type { EnrollmentPolicy } from '../k8s/enrollment.js';
import { KubeApiError, type KubeApi } from '../k8s/lean/api-client.js';
import { podPath } from '../k8s/lean/paths.js';
import { handleCniAdd } from './cni-add.js';
import type { CniHandlers, CniRequest } from './cni-server.js';
import type { PodView } from './enrollment-plan.js';

export interface CniEndpointDeps {
  nodeName: string;
  policy: EnrollmentPolicy;
  synced(): boolean;
  api: KubeApi;
  /** the namespace's labels from the informer cache, when it has the namespace */
  cachedNamespaceLabels(namespace: string): Record<string, string> | undefined;
  enroll(pod: PodView, netns: string): Promise<void>;
  unenroll(uid: string): Promise<void>;
  /** warren_cni_add_duration_seconds: starts a timer, ended with the result */
  timeAdd(): (labels: { result: string }) => void;
}

/**
 * What the CNI server (cni-server.ts) calls: the ADD decision (cni-add.ts)
 * against the API server and the informer caches, timed by result; DEL
 * unenrolls a pod whose netns is going away.
 */
export function cniEndpoint(deps: CniEndpointDeps): CniHandlers {
  return {
    add: async (req: CniRequest) => {
      const timer = deps.timeAdd();
      let result = 'error';
      try {
        const answer = await handleCniAdd(req, {
          nodeName: deps.nodeName,
          policy: deps.policy,
          synced: deps.synced,
          readPod: (r) => readPod(deps.api, r),
          namespaceLabels: async (ns) => deps.cachedNamespaceLabels(ns) ?? (await namespaceLabelsFromApi(deps.api, ns)),
          enroll: deps.enroll,
        });
        result = answer.enrolled ? 'enrolled' : 'skipped';
        return answer;
      } finally {
        timer({ result });
      }
    },
    del: async (req: CniRequest) => deps.unenroll(req.podUid),
  };
}

async function readPod(api: KubeApi, req: CniRequest): Promise<V1Pod> {
  try {
    return await api.get<V1Pod>(podPath(req.podNamespace, req.podName));
  } catch (err) {
    if (err instanceof KubeApiError) throw new WarrenError('ERR_CNI_POD', `pod ${req.podNamespace}/${req.podName}: the API server answered ${err.status}`, { retryable: true });
    throw err;
  }
}

async function namespaceLabelsFromApi(api: KubeApi, namespace: string): Promise<Record<string, string>> {
  return (await api.get<V1Namespace>(`/api/v1/namespaces/${encodeURIComponent(namespace)}`)).metadata?.labels ?? {};
}
