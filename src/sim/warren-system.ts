import { mkdirSync } from 'node:fs';
import { ApiException, ApiextensionsV1Api, CoreV1Api, type KubeConfig, type V1CustomResourceDefinition, type V1Pod } from '@kubernetes/client-node';
import { WARREN_CRDS } from '../policy/crds.js';
import { writeFileAtomic } from './apiserver/persistence.js';
import { agentPaths } from './agent-supervisor.js';
import { ISSUER } from './apiserver/tokens.js';
import { superviseProcess } from './process-supervisor.js';
import { WARREN_MAIN } from './warren-main.js';
import { UNDERLAY, type NodePlan } from './topology/plan.js';

export const SYSTEM_NAMESPACE = 'warren-system';
/** Pods whose process the simulator runs itself (node agents): the kubelet leaves them alone. */
export const SUPERVISED_ANNOTATION = 'sim.warren.io/supervised-by';
export const CA_ADDRESS = `https://${UNDERLAY.address}:15012`;

const TOKEN_TTL_S = 3600;
const TOKEN_REFRESH_MS = 20 * 60_000;

type Log = (msg: string, fields: Record<string, unknown>) => void;

const ignoreConflict = (err: unknown): undefined => {
  if (err instanceof ApiException && err.code === 409) return undefined;
  throw err;
};

/**
 * What `kubectl apply -f deploy/` would create, for the simulator: the CRDs,
 * namespace warren-system, the service accounts, `warren ca` (a process in the
 * underlay netns at 10.255.0.1:15012) and one agent Pod object per node
 * whose projected service account token (bound to that pod, so the CA learns
 * the node from it) the simulator writes and refreshes as the kubelet does.
 */
export async function startWarrenSystem(kc: KubeConfig, nodes: readonly NodePlan[], clusterKubeconfig: string, caLog: string, log: Log): Promise<{ stop(): Promise<void> }> {
  const core = kc.makeApiClient(CoreV1Api);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  for (const body of WARREN_CRDS) await ext.createCustomResourceDefinition({ body: body as V1CustomResourceDefinition }).catch(ignoreConflict);
  await core.createNamespace({ body: { metadata: { name: SYSTEM_NAMESPACE } } }).catch(ignoreConflict);
  for (const name of ['warren-node', 'warren-ca']) await core.createNamespacedServiceAccount({ namespace: SYSTEM_NAMESPACE, body: { metadata: { name } } }).catch(ignoreConflict);
  const ca = superviseProcess({
    name: 'warren ca',
    command: 'ip',
    args: ['netns', 'exec', UNDERLAY.netns, process.execPath, WARREN_MAIN, 'ca', '--kubeconfig', clusterKubeconfig, '--namespace', SYSTEM_NAMESPACE, '--listen', `${UNDERLAY.address}:15012`],
    logFile: caLog,
    log,
  });
  const agentPods = await Promise.all(nodes.map((node) => ensureAgentPod(core, node)));
  const refresh = async (): Promise<void> => {
    for (const [i, node] of nodes.entries()) {
      try {
        const pod = agentPods[i]!;
        const tr = await core.createNamespacedServiceAccountToken({
          namespace: SYSTEM_NAMESPACE,
          name: 'warren-node',
          body: { spec: { audiences: [ISSUER], expirationSeconds: TOKEN_TTL_S, boundObjectRef: { kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! } } },
        });
        mkdirSync(agentPaths(node).dir, { recursive: true });
        writeFileAtomic(agentPaths(node).caToken, tr.status!.token);
      } catch (err) {
        log('agent token refresh failed', { node: node.name, err: (err as Error).message });
      }
    }
  };
  await refresh();
  const timer = setInterval(() => void refresh(), TOKEN_REFRESH_MS);
  return {
    async stop() {
      clearInterval(timer);
      await ca.stop();
    },
  };
}

async function ensureAgentPod(core: CoreV1Api, node: NodePlan): Promise<V1Pod> {
  const name = `warren-node-${node.name}`;
  const body: V1Pod = {
    metadata: { name, namespace: SYSTEM_NAMESPACE, labels: { app: 'warren-node' }, annotations: { [SUPERVISED_ANNOTATION]: 'warren-sim' } },
    spec: { nodeName: node.name, hostNetwork: true, serviceAccountName: 'warren-node', containers: [{ name: 'agent', image: 'warren' }] },
  };
  const pod = (await core.createNamespacedPod({ namespace: SYSTEM_NAMESPACE, body }).catch(ignoreConflict)) ?? (await core.readNamespacedPod({ namespace: SYSTEM_NAMESPACE, name }));
  const now = new Date();
  return core.replaceNamespacedPodStatus({
    namespace: SYSTEM_NAMESPACE,
    name,
    body: {
      ...pod,
      status: {
        phase: 'Running',
        hostIP: node.address,
        podIP: node.address,
        podIPs: [{ ip: node.address }],
        startTime: now,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
        containerStatuses: [{ name: 'agent', image: 'warren', imageID: '', ready: true, restartCount: 0, started: true, state: { running: { startedAt: now } } }],
      },
    },
  });
}
