import type { V1Pod } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';
import { decideEnrollment, isExcludedNamespace, type EnrollmentPolicy, type SkipReason } from '../k8s/enrollment.js';
import type { CniRequest } from './cni-server.js';
import { podView, type PodView } from './enrollment-plan.js';

export type CniAddResult = { enrolled: true } | { enrolled: false; reason: SkipReason };

export interface CniAddDeps {
  nodeName: string;
  policy: EnrollmentPolicy;
  /** whether the policy, PeerAuthentication, cluster, pod and namespace informers have all synced */
  synced(): boolean;
  /** the pod from the API server (rejects with a retryable error when the API server cannot answer) */
  readPod(req: CniRequest): Promise<V1Pod>;
  namespaceLabels(namespace: string): Promise<Record<string, string>>;
  enroll(pod: PodView, netns: string): Promise<void>;
}

/**
 * The agent's answer to a CNI ADD (README "CNI plugin"). Until every
 * informer has synced the answer is a retryable error (CNI "try again
 * later"): a pod enrolled then would run without its policies and send
 * plaintext where mTLS is required. The pod must be the one the plugin
 * named (same UID) and be scheduled on this node: an ADD for another node's
 * pod is refused, never enrolled here.
 */
export async function handleCniAdd(req: CniRequest, deps: CniAddDeps): Promise<CniAddResult> {
  if (isExcludedNamespace(req.podNamespace, deps.policy)) return { enrolled: false, reason: 'excluded-namespace' };
  const who = `pod ${req.podNamespace}/${req.podName}`;
  if (!deps.synced()) throw new WarrenError('ERR_AGENT_NOT_SYNCED', `${who}: the node agent has not synced policies and cluster state yet`, { retryable: true });
  const pod = await deps.readPod(req);
  if (pod.metadata?.uid !== req.podUid) throw new WarrenError('ERR_CNI_POD', `${who} has uid ${pod.metadata?.uid}, not ${req.podUid}`);
  const node = pod.spec?.nodeName;
  if (node !== deps.nodeName) throw new WarrenError('ERR_CNI_POD_NODE', `${who} is scheduled on ${node === undefined ? 'no node' : `node ${node}`}, not on ${deps.nodeName}`);
  const view = { ...podView(pod), ips: req.ips };
  const decision = decideEnrollment(await deps.namespaceLabels(req.podNamespace), view, deps.policy);
  if (!decision.enroll) return { enrolled: false, reason: decision.reason };
  await deps.enroll(view, req.netns);
  return { enrolled: true };
}
