import type { KubeApi } from '../k8s/lean/api-client.js';
import { podPath } from '../k8s/lean/paths.js';
import { REDIRECTION_ANNOTATION, REDIRECTION_REASON_ANNOTATION } from '../k8s/enrollment.js';
import type { RedirectionState } from './enrollment-manager.js';

/** Writes a pod's redirection state (and why, or clears the reason) as its annotations (docs/architecture.md §4). */
export function podAnnotator(api: KubeApi) {
  return async (pod: { namespace: string; name: string }, state: RedirectionState, reason?: string): Promise<void> => {
    await api.mergePatch(podPath(pod.namespace, pod.name), { metadata: { annotations: { [REDIRECTION_ANNOTATION]: state, [REDIRECTION_REASON_ANNOTATION]: reason ?? null } } });
  };
}
