import { appendFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, ApiextensionsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { execa } from 'execa';
import { WarrenError } from '../errors/warren-error.js';
import { BUNDLE_LABELS } from '../identity/trust-bundle.js';
import { CRD_LABELS } from '../policy/crds.js';
import { agentCommand, agentPaths } from './agent-supervisor.js';
import { adminKubeConfig } from './client/cluster-client.js';
import { httpGetInNetns } from '../net/netns-http.js';
import { listMeshProcesses } from './mesh-processes.js';
import { readClusterFile, runningDaemonPid, statePaths } from './state-dir.js';
import { planTopology, type NodePlan } from './topology/plan.js';
import { CA_ADDRESS, SUPERVISED_ANNOTATION, SYSTEM_NAMESPACE, installWarrenSystem } from './warren-system.js';
import { NODE_PORTS } from '../redirect/constants.js';

type Progress = (line: string) => void;

const selector = (labels: Readonly<Record<string, string>>): string => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');

const ignoreNotFound = (err: unknown): undefined => {
  if (err instanceof ApiException && err.code === 404) return undefined;
  throw err;
};

function runningCluster(stateDir: string): { kc: KubeConfig; nodes: NodePlan[]; clusterKubeconfig: string } {
  const cluster = readClusterFile(stateDir);
  if (cluster === undefined || runningDaemonPid(stateDir) === undefined) {
    throw new WarrenError('ERR_SIM_NOT_RUNNING', `no running simulated cluster in ${stateDir}; start one with \`warren sim up\``);
  }
  return { kc: adminKubeConfig(stateDir).kc, nodes: planTopology(stateDir, cluster.nodes).nodes, clusterKubeconfig: statePaths(stateDir).clusterKubeconfig };
}

async function until(check: () => Promise<boolean>, timeoutMs: number, failure: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new WarrenError('ERR_SIM_MESH', failure());
    await sleep(200);
  }
}

/**
 * Uninstalls the mesh as deploy/uninstall/README.md tells an operator to:
 * the agent and CA workloads go (the simulator stops their processes), the
 * cleanup runs on every node (`warren node --uninstall` in the node's netns
 * with that node's agent flags, as the cleanup DaemonSet would), then
 * namespace warren-system (with Secret warren-ca), the trust bundle
 * ConfigMaps of every namespace, and the CRDs with every policy.
 */
export async function meshUninstall(stateDir: string, progress: Progress): Promise<void> {
  const { kc, nodes, clusterKubeconfig } = runningCluster(stateDir);
  const core = kc.makeApiClient(CoreV1Api);
  const ext = kc.makeApiClient(ApiextensionsV1Api);

  const workloads = (await core.listNamespacedPod({ namespace: SYSTEM_NAMESPACE }).catch(ignoreNotFound))?.items ?? [];
  const supervised = workloads.filter((p) => p.metadata?.annotations?.[SUPERVISED_ANNOTATION] !== undefined);
  progress(`deleting warren's workloads: ${supervised.map((p) => p.metadata!.name!).join(', ') || 'none left'}`);
  for (const pod of supervised) await core.deleteNamespacedPod({ namespace: SYSTEM_NAMESPACE, name: pod.metadata!.name! }).catch(ignoreNotFound);
  await until(async () => (await listMeshProcesses(clusterKubeconfig)).length === 0, 30_000, () => "warren's agents and CA did not exit within 30 s");

  for (const node of nodes) {
    progress(`${node.name}: warren node --uninstall`);
    const { command, args } = agentCommand(node, clusterKubeconfig, CA_ADDRESS, ['--uninstall']);
    const res = await execa(command, args, { reject: false, all: true, timeout: 120_000 });
    // Where `warren sim logs node/<name>` shows it, as kubectl logs would show the cleanup pod's.
    await appendFile(agentPaths(node).log, `${res.all ?? ''}\n`);
    if (res.exitCode !== 0) {
      const tail = (res.all ?? '').split('\n').slice(-10).join('\n');
      throw new WarrenError('ERR_SIM_MESH', `${node.name}: warren node --uninstall failed (exit ${res.exitCode ?? res.signal}):\n${tail}\nfix the cause and run \`warren sim mesh uninstall\` again`);
    }
  }

  progress(`deleting namespace ${SYSTEM_NAMESPACE} (service accounts, Secret warren-ca)`);
  await core.deleteNamespace({ name: SYSTEM_NAMESPACE }).catch(ignoreNotFound);
  const bundles = (await core.listConfigMapForAllNamespaces({ labelSelector: selector(BUNDLE_LABELS) })).items;
  progress(`deleting ${bundles.length} trust bundle ConfigMaps`);
  for (const cm of bundles) await core.deleteNamespacedConfigMap({ namespace: cm.metadata!.namespace!, name: cm.metadata!.name! }).catch(ignoreNotFound);
  const crds = (await ext.listCustomResourceDefinition({ labelSelector: selector(CRD_LABELS) })).items;
  progress(`deleting CRDs ${crds.map((c) => c.metadata!.name!).join(', ') || '(none left)'} and every policy`);
  for (const crd of crds) await ext.deleteCustomResourceDefinition({ name: crd.metadata!.name! }).catch(ignoreNotFound);
}

/** Puts the mesh back (`kubectl apply -k deploy/`): the objects, then waits until every node's agent is ready. */
export async function meshInstall(stateDir: string, progress: Progress): Promise<void> {
  const { kc, nodes } = runningCluster(stateDir);
  progress(`creating the CRDs, namespace ${SYSTEM_NAMESPACE}, warren ca and ${nodes.length} agents`);
  await installWarrenSystem(kc, nodes);
  for (const node of nodes) {
    const ready = async (): Promise<boolean> =>
      (await httpGetInNetns({ netns: node.netns, host: '127.0.0.1', port: NODE_PORTS.readiness, path: '/healthz/ready', timeoutMs: 1000 }).catch(() => undefined))?.status === 200;
    await until(ready, 60_000, () => `the agent of ${node.name} was not ready within 60 s (warren sim logs node/${node.name})`);
    progress(`${node.name}: agent ready`);
  }
}
