import { ApiException, ApiextensionsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { typedCrds } from '../policy/crd-manifests.js';
import { UNDERLAY, type NodePlan } from './topology/plan.js';
import { NODE_PORTS } from '../redirect/constants.js';

export const SYSTEM_NAMESPACE = 'warren-system';
/** Pods whose process the simulator runs itself (node agents, the CA): the kubelet leaves them alone. */
export const SUPERVISED_ANNOTATION = 'sim.warren.io/supervised-by';
export const CA_ADDRESS = `https://${UNDERLAY.address}:${NODE_PORTS.ca}`;
/** The CA's pod: what the warren-ca Deployment would run. */
export const CA_POD = 'warren-ca';
/** A node's agent pod: what the warren-node DaemonSet would run there. */
export const agentPodName = (node: string): string => `warren-node-${node}`;
/**
 * A node agent's revision, as a DaemonSet's template hash would be: changing it replaces
 * the agent the way a rolling update with maxSurge: 1 does (mesh-supervisor.ts); the
 * supervisor writes the revision it runs in AGENT_RUNNING_ANNOTATION once the old one is stopped.
 */
export const AGENT_REVISION_ANNOTATION = 'sim.warren.io/agent-revision';
export const AGENT_RUNNING_ANNOTATION = 'sim.warren.io/agent-revision-running';
export const AGENT_POD_LABELS: Readonly<Record<string, string>> = { app: 'warren-node' };

const ignoreConflict = (err: unknown): undefined => {
  if (err instanceof ApiException && err.code === 409) return undefined;
  throw err;
};

/**
 * What `kubectl apply -k deploy/` would create, for the simulator: the CRDs,
 * namespace warren-system, the service accounts, the CA's pod and one agent
 * pod per node. The daemon runs their processes while the pods exist
 * (sim/mesh-supervisor.ts). Objects that exist already are left as they are.
 */
export async function installWarrenSystem(kc: KubeConfig, nodes: readonly NodePlan[]): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body }).catch(ignoreConflict);
  await core.createNamespace({ body: { metadata: { name: SYSTEM_NAMESPACE } } }).catch(ignoreConflict);
  for (const name of ['warren-node', 'warren-ca']) await core.createNamespacedServiceAccount({ namespace: SYSTEM_NAMESPACE, body: { metadata: { name } } }).catch(ignoreConflict);
  // warren ca runs in the underlay netns; its pod names the first node only so the scheduler leaves it alone.
  await ensureSupervisedPod(core, { name: CA_POD, labels: { app: 'warren-ca' }, serviceAccount: 'warren-ca', node: nodes[0]!.name, ip: UNDERLAY.address });
  for (const node of nodes) {
    await ensureSupervisedPod(core, { name: agentPodName(node.name), labels: AGENT_POD_LABELS, serviceAccount: 'warren-node', node: node.name, ip: node.address });
  }
}

async function ensureSupervisedPod(core: CoreV1Api, spec: { name: string; labels: Readonly<Record<string, string>>; serviceAccount: string; node: string; ip: string }): Promise<V1Pod> {
  const body: V1Pod = {
    metadata: { name: spec.name, namespace: SYSTEM_NAMESPACE, labels: { ...spec.labels }, annotations: { [SUPERVISED_ANNOTATION]: 'warren-sim' } },
    spec: { nodeName: spec.node, hostNetwork: true, serviceAccountName: spec.serviceAccount, containers: [{ name: 'main', image: 'warren' }] },
  };
  const pod = (await core.createNamespacedPod({ namespace: SYSTEM_NAMESPACE, body }).catch(ignoreConflict)) ?? (await core.readNamespacedPod({ namespace: SYSTEM_NAMESPACE, name: spec.name }));
  if (pod.status?.phase === 'Running') return pod;
  const now = new Date();
  return core.replaceNamespacedPodStatus({
    namespace: SYSTEM_NAMESPACE,
    name: spec.name,
    body: {
      ...pod,
      status: {
        phase: 'Running',
        hostIP: spec.ip,
        podIP: spec.ip,
        podIPs: [{ ip: spec.ip }],
        startTime: now,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
        containerStatuses: [{ name: 'main', image: 'warren', imageID: '', ready: true, restartCount: 0, started: true, state: { running: { startedAt: now } } }],
      },
    },
  });
}
