import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import { REDIRECTION_ANNOTATION, REDIRECTION_REASON_ANNOTATION } from '../k8s/enrollment.js';
import type { RedirectionState } from './enrollment-manager.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Writes a pod's redirection state (and why, or clears the reason) as its annotations (docs/architecture.md §4). */
export function podAnnotator(core: CoreV1Api) {
  return async (pod: { namespace: string; name: string }, state: RedirectionState, reason?: string): Promise<void> => {
    await core.patchNamespacedPod(
      { namespace: pod.namespace, name: pod.name, body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: state, [REDIRECTION_REASON_ANNOTATION]: reason ?? null } } } },
      mergePatch,
    );
  };
}
