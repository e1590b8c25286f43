import { mkdirSync, rmSync } from 'node:fs';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ApiObjects } from './apiserver/objects.js';
import type { KubeObject } from './apiserver/store.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { CA_TOKEN_AUDIENCE } from '../identity/ca-client.js';
import { agentPaths, superviseAgent } from './agent-supervisor.js';
import { superviseProcess, type SupervisedProcess } from './process-supervisor.js';
import { UNDERLAY, type NodePlan } from './topology/plan.js';
import { WARREN_MAIN } from './warren-main.js';
import { CA_ADDRESS, CA_POD, SUPERVISED_ANNOTATION, SYSTEM_NAMESPACE, agentPodName } from './warren-system.js';
import { NODE_PORTS } from '../redirect/constants.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

const TOKEN_TTL_S = 3600;
const TOKEN_REFRESH_MS = 20 * 60_000;

interface Running {
  uid: string;
  process: SupervisedProcess;
  node?: NodePlan;
}

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
      if (running.has(name)) continue;
      const node = nodeOfPod.get(name);
      running.set(name, { uid: pod.metadata.uid, process: await start(pod), ...(node === undefined ? {} : { node }) });
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
