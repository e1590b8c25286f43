import { rmdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubernetesListObject, V1Pod } from '@kubernetes/client-node';
import { uninstallCniPlugin } from '../cni/installer.js';
import type { KubeApi } from '../k8s/lean/api-client.js';
import { podPath } from '../k8s/lean/paths.js';
import { REDIRECTION_ANNOTATION, REDIRECTION_REASON_ANNOTATION } from '../k8s/enrollment.js';
import { resolvePodNetns, type NetnsCandidate } from '../k8s/netns-candidates.js';
import { discoverNetnsCandidates } from '../k8s/netns-discovery.js';
import type { RedirectBackend } from '../redirect/backend.js';
import { cleanupBackends, createBackend, gatherBackendFacts } from '../redirect/detect.js';
import { systemRunner } from '../redirect/runner.js';
import { handoffSocketPath, type NodeAgentConfig } from './config.js';
import { podView, type PodView } from './enrollment-plan.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

/** Every annotation the agent writes on pods: uninstall leaves none of them. */
export const AGENT_POD_ANNOTATIONS = [REDIRECTION_ANNOTATION, REDIRECTION_REASON_ANNOTATION] as const;

/** A merge patch that deletes the agent's annotations, or undefined when the pod carries none. */
export function annotationRemovalPatch(pod: V1Pod): { metadata: { annotations: Record<string, null> } } | undefined {
  const present = AGENT_POD_ANNOTATIONS.filter((key) => pod.metadata?.annotations?.[key] !== undefined);
  return present.length === 0 ? undefined : { metadata: { annotations: Object.fromEntries(present.map((key) => [key, null])) } };
}

/**
 * `warren node --uninstall`: run on every node once the agent DaemonSet is
 * gone (deploy/uninstall). The CNI entry and plugin go first, so pods
 * created from now on start without capture instead of failing closed
 * against an agent that is not coming back; then every pod's rules, the
 * node's rules, the agent's annotations and its socket. Returns 1 when
 * something stayed, so the cleanup init container is retried.
 */
export async function uninstallNode(config: NodeAgentConfig, api: KubeApi, log: Log): Promise<number> {
  uninstallCniPlugin({ confDir: config.cniConfDir, binDir: config.cniBinDir, log: (msg) => log(msg, {}) });
  const backends = cleanupBackends(await gatherBackendFacts(systemRunner)).map((name) => createBackend(name, systemRunner));
  const pods = (await api.get<KubernetesListObject<V1Pod>>('/api/v1/pods', { fieldSelector: `spec.nodeName=${config.nodeName}` })).items;
  const candidates = await discoverNetnsCandidates();
  let failed = 0;
  for (const pod of pods) {
    const view = podView(pod);
    const name = `${view.namespace}/${view.name}`;
    try {
      // Every pod, not only those annotated `enabled`: an agent that died between
      // programming rules and writing the annotation must not leave rules behind.
      if (!view.hostNetwork && view.ips.length > 0) await removePodRules(candidates, view, backends, log);
      const patch = annotationRemovalPatch(pod);
      if (patch !== undefined) await api.mergePatch(podPath(view.namespace, view.name), patch);
    } catch (err) {
      failed++;
      log('pod cleanup failed; run --uninstall again', { pod: name, err: (err as Error).message });
    }
  }
  for (const backend of backends) await backend.removeNode(undefined);
  removeAgentFiles(config, log);
  if (failed > 0) return 1;
  log('uninstalled: no warren rule, CNI entry, plugin, socket or pod annotation left on this node', { cniConfDir: config.cniConfDir, backends: backends.map((b) => b.name) });
  return 0;
}

/**
 * Where a pod's rules can be: its netns, or each of several that could be it
 * (a stale sandbox holding a recycled IP may carry rules from an earlier
 * agent as well; removal touches only warren's own tables and routes).
 */
async function removePodRules(candidates: readonly NetnsCandidate[], pod: PodView, backends: readonly RedirectBackend[], log: Log): Promise<void> {
  const name = `${pod.namespace}/${pod.name}`;
  const match = resolvePodNetns(candidates, pod);
  if (match.kind === 'not-found') {
    log('pod netns not found; nothing to clean there', { pod: name });
    return;
  }
  const paths = match.kind === 'found' ? [match.candidate.path] : match.candidates.map((c) => c.path);
  for (const netns of paths) for (const backend of backends) await backend.removePod(netns);
  log('pod clean', { pod: name, netns: paths });
}

/** The sockets, then their directory and the state dir if that leaves them empty (a hostPath mount point stays: EBUSY). */
function removeAgentFiles(config: NodeAgentConfig, log: Log): void {
  rmSync(config.cniSocket, { force: true });
  // an agent stopped without closing it (SIGKILL, or a node that lost power) leaves its hand-off socket
  rmSync(handoffSocketPath(config), { force: true });
  for (const dir of new Set([dirname(config.cniSocket), config.stateDir])) {
    try {
      rmdirSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!['ENOENT', 'ENOTEMPTY', 'EEXIST', 'EBUSY'].includes(code)) log('cannot remove the agent directory', { dir, err: (err as Error).message });
    }
  }
}
