import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { ApiObjects } from './apiserver/objects.js';
import type { KubeObject } from './apiserver/store.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { CA_TOKEN_AUDIENCE } from '../identity/ca-client.js';
import { agentPaths, superviseAgent } from './agent-supervisor.js';
import { superviseProcess, type SupervisedProcess } from './process-supervisor.js';
import { UNDERLAY, type NodePlan } from './topology/plan.js';
import { WARREN_MAIN } from './warren-main.js';
import { AGENT_REVISION_ANNOTATION, AGENT_RUNNING_ANNOTATION, CA_ADDRESS, CA_POD, SUPERVISED_ANNOTATION, SYSTEM_NAMESPACE, agentPodName } from './warren-system.js';
import { NODE_PORTS } from '../redirect/constants.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

const TOKEN_TTL_S = 3600;
const TOKEN_REFRESH_MS = 20 * 60_000;

interface Running {
  uid: string;
  process: SupervisedProcess;
  node?: NodePlan;
  /** the agent's AGENT_REVISION_ANNOTATION when it started */
  revision?: string;
}

/** How long a surged agent has to log that it is ready before the upgrade is abandoned. */
const SURGE_READY_MS = 60_000;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const readyLines = (log: string): number => {
  try {
    return readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('"msg":"node agent ready"')).length;
  } catch {
    return 0;
  }
};

/**
 * The kubelet of warren's own pods: while Pod warren-system/warren-ca exists,
 * `warren ca` runs in the underlay netns (10.255.0.1:15012); while
 * warren-system/warren-node-<node> exists, that node's agent runs, with the
 * projected token bound to that pod, written before it starts and kept fresh
 * as the kubelet does. Deleting a pod (`kubectl delete`, the namespace,
 * `warren sim mesh uninstall`) stops its process and removes its token;
 * a pod created again starts it again.
 */
export function superviseWarrenPods(objects: ApiObjects, kc: KubeConfig, nodes: readonly NodePlan[], paths: { clusterKubeconfig: string; caLog: string }, log: Log): { stop(): Promise<void> } {
  const core = kc.makeApiClient(CoreV1Api);
  const podType = objects.registry.lookup('', 'v1', 'pods');
  const nodeOfPod = new Map(nodes.map((n) => [agentPodName(n.name), n]));
  const running = new Map<string, Running>();
  let pass: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const writeToken = async (node: NodePlan, pod: { name: string; uid: string }): Promise<void> => {
    try {
      const tr = await core.createNamespacedServiceAccountToken({
        namespace: SYSTEM_NAMESPACE,
        name: 'warren-node',
        body: { spec: { audiences: [CA_TOKEN_AUDIENCE], expirationSeconds: TOKEN_TTL_S, boundObjectRef: { kind: 'Pod', name: pod.name, uid: pod.uid } } },
      });
      const token = tr.status?.token;
      if (token === undefined) throw new Error('the TokenRequest answer carries no token');
      mkdirSync(agentPaths(node).dir, { recursive: true });
      writeFileAtomic(agentPaths(node).caToken, token);
    } catch (err) {
      log('agent token write failed', { node: node.name, err: (err as Error).message });
    }
  };

  const start = async (pod: KubeObject): Promise<SupervisedProcess> => {
    const node = nodeOfPod.get(pod.metadata.name);
    if (node === undefined) {
      return superviseProcess({
        name: 'warren ca',
        command: 'ip',
        args: ['netns', 'exec', UNDERLAY.netns, process.execPath, WARREN_MAIN, 'ca', '--kubeconfig', paths.clusterKubeconfig, '--namespace', SYSTEM_NAMESPACE, '--listen', `${UNDERLAY.address}:${NODE_PORTS.ca}`],
        logFile: paths.caLog,
        log,
      });
    }
    await writeToken(node, { name: pod.metadata.name, uid: pod.metadata.uid });
    return superviseAgent(node, paths.clusterKubeconfig, CA_ADDRESS, log);
  };

  /**
   * A DaemonSet rolling update with maxSurge: 1 (deploy/daemonset.yaml): the new agent starts
   * beside the old one, which gets SIGTERM only once the new one is ready; the old then hands
   * its listeners over and drains (docs/architecture.md §4, "Agent upgrade").
   */
  const surge = async (name: string, r: Running & { node: NodePlan }, revision: string): Promise<void> => {
    const agentLog = agentPaths(r.node).log;
    const before = readyLines(agentLog);
    log('agent upgrade: starting the new agent beside the old one', { node: r.node.name, revision });
    const next = superviseAgent(r.node, paths.clusterKubeconfig, CA_ADDRESS, log);
    const until = Date.now() + SURGE_READY_MS;
    while (readyLines(agentLog) <= before && Date.now() < until) await sleep(100);
    r.revision = revision;
    if (readyLines(agentLog) <= before) {
      log('agent upgrade abandoned: the new agent did not become ready; the old one keeps running', { node: r.node.name });
      await next.stop();
      return;
    }
    log('agent upgrade: the new agent is ready; stopping the old one', { node: r.node.name });
    await r.process.stop();
    r.process = next;
    await core
      .patchNamespacedPod({ namespace: SYSTEM_NAMESPACE, name, body: { metadata: { annotations: { [AGENT_RUNNING_ANNOTATION]: revision } } } }, mergePatch)
      .catch((err: Error) => log('agent upgrade: annotation failed', { node: r.node.name, err: err.message }));
  };

  /** Brings the processes in line with the pods: stopped ones first, so a re-created pod gets a fresh process. */
  const reconcile = async (): Promise<void> => {
    const desired = new Map<string, KubeObject>();
    for (const pod of objects.store.list(podType, SYSTEM_NAMESPACE)) {
      const name = pod.metadata.name as string;
      if (pod.metadata.annotations?.[SUPERVISED_ANNOTATION] !== undefined && (name === CA_POD || nodeOfPod.has(name))) desired.set(name, pod);
    }
    const gone = [...running].filter(([name, r]) => stopped || desired.get(name)?.metadata.uid !== r.uid);
    for (const [name] of gone) running.delete(name);
    await Promise.all(
      gone.map(async ([name, r]) => {
        await r.process.stop();
        if (r.node !== undefined) rmSync(agentPaths(r.node).caToken, { force: true });
        log('warren pod process stopped', { pod: `${SYSTEM_NAMESPACE}/${name}` });
      }),
    );
    if (stopped) return;
    for (const [name, pod] of desired) {
      const revision = pod.metadata.annotations?.[AGENT_REVISION_ANNOTATION] ?? '';
      const r = running.get(name);
      if (r?.node !== undefined && r.revision !== revision) await surge(name, r as Running & { node: NodePlan }, revision);
      if (r !== undefined) continue;
      const node = nodeOfPod.get(name);
      running.set(name, { uid: pod.metadata.uid, process: await start(pod), revision, ...(node === undefined ? {} : { node }) });
    }
  };
  // One pass at a time; events during a pass cause exactly one more.
  const trigger = (): void => {
    if (pass !== undefined) {
      again = true;
      return;
    }
    pass = reconcile()
      .catch((err: Error) => log('warren pod supervision failed', { err: err.message }))
      .finally(() => {
        pass = undefined;
        if (again) {
          again = false;
          trigger();
        }
      });
  };

  const unsubscribe = objects.store.subscribe((ev) => {
    if (ev.typeKey === '/v1/pods' && ev.object.metadata.namespace === SYSTEM_NAMESPACE) trigger();
  });
  const refresh = setInterval(() => {
    for (const [name, r] of running) if (r.node !== undefined) void writeToken(r.node, { name, uid: r.uid });
  }, TOKEN_REFRESH_MS);
  trigger();

  return {
    async stop() {
      stopped = true;
      unsubscribe();
      clearInterval(refresh);
      while (pass !== undefined) await pass;
      trigger();
      while (pass !== undefined) await pass;
    },
  };
}
