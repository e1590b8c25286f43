import { mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { installCniPlugin, watchCniConfig } from '../cni/installer.js';
import { KubeApi } from '../k8s/lean/api-client.js';
import { loadApiCredentials } from '../k8s/lean/credentials.js';
import { leanWatcher } from '../k8s/lean/watcher.js';
import { parseAgentNamespace, parseAgentPod } from '../k8s/lean/agent-objects.js';
import { NetnsFinder } from '../k8s/netns-discovery.js';
import { chooseBackend, createBackend, gatherBackendFacts } from '../redirect/detect.js';
import { systemRunner } from '../redirect/runner.js';
import { startCniServer } from './cni-server.js';
import { handoffSocketPath, type NodeAgentConfig } from './config.js';
import { EnrollmentManager } from './enrollment-manager.js';
import { podView, type PodView } from './enrollment-plan.js';
import { startWorkloadIdentity } from './workload-identity.js';
import { PodProxy } from '../tunnel/pod-proxy.js';
import { NativeHub } from '../tunnel/native-hub.js';
import { NativePodProxy } from '../tunnel/native-pod-proxy.js';
import { ConnectionRegistry } from '../tunnel/connection-registry.js';
import { startClusterState } from './cluster-state.js';
import { startPolicyState } from './policy-state.js';
import { serveEndpoints } from '../telemetry/http-endpoints.js';
import { adminRoutes } from './admin-api.js';
import { agentMetrics } from '../telemetry/agent-metrics.js';
import { ConnectionTelemetry } from '../telemetry/connection-telemetry.js';
import { uninstallNode } from './uninstall.js';
import { agentDataPlane } from './agent-dataplane.js';
import { podAnnotator } from './annotate-pod.js';
import { cniEndpoint } from './cni-endpoint.js';
import { Reconciler } from './reconciler.js';
import { receiveHandoff, serveHandoff } from './listener-handoff.js';
import { HEAP_TRIM_INTERVAL_MS, HEAP_TRIM_THRESHOLD_BYTES, boundCHeapRetention, trimHeap } from '../native/c-heap.js';

/** How long a new agent waits for the old one's sockets before making its own. */
const HANDOFF_RECEIVE_MS = 5_000;
/** After it is ready, how long it gives its first enrollments to adopt them before closing the rest. */
const HANDOFF_ADOPT_MS = 30_000;
/** On SIGTERM during a hand-off, how long the old agent keeps accepting for the new one to finish. */
const HANDOFF_SETTLE_MS = 10_000;

/** The inode of the file at `path` (a socket, a netns), undefined when there is none. */
const socketInode = (path: string): number | undefined => statSync(path, { throwIfNoEntry: false })?.ino;

/** The static plugin (src/cni/warren-cni.c) node-gyp builds beside the addon: what the container image ships. */
const PACKAGED_PLUGIN_BINARY = fileURLToPath(new URL('../../../build/Release/warren-cni', import.meta.url));

/**
 * `warren node`: enrolls the pods of its node (docs/architecture.md §4). Existing pods
 * are found by their netns and enrolled in place; new ones arrive through
 * the CNI plugin before their containers start. On SIGTERM the listeners
 * close but rules stay: enrolled pods' traffic fails until the agent is back
 * rather than flowing around it.
 */
export async function runNodeAgent(config: NodeAgentConfig): Promise<number> {
  const log = pino({ level: config.logLevel, base: { component: 'warren-node', node: config.nodeName } });
  const logFn = (msg: string, fields: Record<string, unknown>): void => log.info(fields, msg);
  // The agent's own client, not @kubernetes/client-node: that one costs ≥ 75 MiB RSS (docs/architecture.md §4).
  const api = new KubeApi(loadApiCredentials(config.kubeconfig));
  try {
    return await runAgent(config, api, log, logFn);
  } finally {
    api.close();
  }
}

async function runAgent(config: NodeAgentConfig, api: KubeApi, log: pino.Logger, logFn: (msg: string, fields: Record<string, unknown>) => void): Promise<number> {
  if (config.uninstall) return uninstallNode(config, api, logFn);
  // first, so that from here on every arena gives back what it frees past its end (c-heap.ts)
  if (!boundCHeapRetention()) log.warn({ trimThresholdBytes: HEAP_TRIM_THRESHOLD_BYTES }, 'glibc refused the heap trim threshold: arenas keep what they free (RSS grows)');
  const watch = leanWatcher(api, logFn);
  const backendName = chooseBackend(config.redirectBackend, await gatherBackendFacts(systemRunner));
  const backend = createBackend(backendName, systemRunner);
  const policy = { excludedNamespaces: new Set(config.excludeNamespaces) };

  // The gauge, the policy watch and the reconciler call back into objects made below them
  // only later: on a scrape, or on an informer event, which cannot arrive before the
  // synchronous wiring up to startCniServer's await has run.
  const registry = new Registry();
  const metrics = agentMetrics(registry, () => manager.enrolled().length);
  const identity = startWorkloadIdentity(watch, config, registry, logFn);
  const cluster = startClusterState(watch);
  const connections = new ConnectionRegistry();
  const policies = startPolicyState(api, watch, logFn, () => reauthorize(connections, log), config.nodeName);
  const dataplane = agentDataPlane({ config, index: () => cluster.index(), waypoints: () => cluster.waypoints(), identity, policies, metrics, log });
  const telemetry = new ConnectionTelemetry({ registry, index: () => cluster.index(), clusterDomain: config.clusterDomain, accessLog: accessLogWriter(log, config.accessLogLevel) });
  const netnsFinder = new NetnsFinder();
  const native = config.dataplane === 'native' ? new NativeHub(dataplane, config.dataplaneThreads ?? availableParallelism()) : undefined;
  const manager = new EnrollmentManager({
    dataplane,
    backend,
    findNetns: (pod) => netnsFinder.find(pod),
    acquireIdentity: (pod) => identity.acquire(pod),
    releaseIdentity: (uid) => identity.release(uid),
    annotate: podAnnotator(api),
    startProxy: async (options, uid) => {
      const adopt = adoption === undefined ? {} : { adopt: (family: 4 | 6, port: number) => adoption.take(uid, family, port) };
      const proxy = await (native === undefined ? PodProxy.start({ ...options, ...adopt }) : NativePodProxy.start({ ...options, ...adopt }, native));
      adoption?.accepting(uid);
      return proxy;
    },
    telemetry,
    connections,
    ruleError: (operation) => metrics.ruleErrors.inc({ operation }),
    ruleApplied: (operation) => metrics.ruleApplies.inc({ operation }),
    // the same netns file (its inode), and the rules this agent would write there
    rulesInPlace: (uid, netns, rulesId) => {
      const held = adoption?.rules(uid);
      return held !== undefined && held.id === rulesId && held.netns === socketInode(netns);
    },
    log: logFn,
    drainMs: config.drainSeconds * 1000,
  });

  const reconciler = new Reconciler({
    pods: (): PodView[] => pods.list().map(podView),
    namespaceLabels: () => namespaceLabels(),
    policy,
    enrolled: () => new Map(manager.enrolled().map((p) => [p.uid, p.labels])),
    enroll: (pod) => manager.enroll(pod),
    relabel: (uid, labels) => manager.relabel(uid, labels),
    unenroll: ({ uid, ...options }) => manager.unenroll(uid, options),
    log: logFn,
  });
  const pods = watch<V1Pod>({ path: '/api/v1/pods', fieldSelector: `spec.nodeName=${config.nodeName}`, parse: parseAgentPod, onChange: reconciler.soon });
  const namespaces = watch<V1Namespace>({ path: '/api/v1/namespaces', parse: parseAgentNamespace, onChange: reconciler.soon });
  const namespaceLabels = (): Map<string, Record<string, string>> => new Map(namespaces.list().map((n) => [n.metadata?.name ?? '', n.metadata?.labels ?? {}]));

  // An upgrade: the agent this one replaces hands over its pods' listening sockets before any
  // pod is enrolled here, and gives up the CNI socket (docs/architecture.md §4, "Agent upgrade").
  const handoffPath = handoffSocketPath(config);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const adoption = await receiveHandoff({ path: handoffPath, timeoutMs: HANDOFF_RECEIVE_MS, log: logFn });
  const cniServer = await startCniServer(
    config.cniSocket,
    cniEndpoint({
      nodeName: config.nodeName,
      policy,
      synced: () => reconciler.synced(),
      api,
      cachedNamespaceLabels: (ns) => namespaceLabels().get(ns),
      enroll: (pod, netns) => manager.enroll(pod, netns),
      unenroll: (uid) => manager.unenroll(uid, { podGone: true }),
      timeAdd: () => metrics.cniAdd.startTimer(),
    }),
    logFn,
  );

  const cniInode = socketInode(config.cniSocket);
  const cniLog = (msg: string): void => logFn(msg, { cniConfDir: config.cniConfDir });
  const cniOptions = { ...cniInstallOptions(config), log: cniLog };
  if (config.installCni) {
    const installed = installCniPlugin(cniOptions);
    log.info({ plugin: cniOptions.plugin, binPath: installed.binPath, confPath: installed.confPath }, 'CNI plugin installed');
  }
  const cniWatch = config.installCni ? watchCniConfig(cniOptions) : undefined;

  let ready = false;
  // SO_REUSEPORT: in an upgrade the new agent (hostNetwork) binds the node's ports beside the old
  // one, which frees them when it exits; its readiness is what lets the rollout stop the old one.
  const shared = { reusePort: true };
  const readiness = await serveEndpoints(
    config.readinessAddress,
    { '/healthz/ready': (_req, res) => void res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'initial sync not done\n') },
    shared,
  );
  const metricsServer = await serveEndpoints(
    config.metricsAddress,
    { '/metrics': async (_req, res) => void res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics()) },
    shared,
  );
  const admin = await serveEndpoints(
    config.adminAddress,
    adminRoutes({ config, enrolled: () => manager.enrolled(), index: () => cluster.index(), waypoints: () => cluster.waypoints(), policies, certs: identity.certs, bundle: identity.bundle, backend: backendName }),
    shared,
  );
  await Promise.all([pods.synced, namespaces.synced, cluster.synced, policies.synced]);
  reconciler.markSynced();
  ready = true;
  log.info({ backend: backendName, cniSocket: config.cniSocket, dataplane: config.dataplane, adoptedPods: adoption?.pods ?? 0 }, 'node agent ready');
  const heapTrim = setInterval(trimHeap, HEAP_TRIM_INTERVAL_MS).unref();
  // Pods the first reconcile did not enroll by then keep the old agent's listeners until it stops.
  if (adoption !== undefined) setTimeout(() => adoption.finish(), HANDOFF_ADOPT_MS).unref();
  let replaced = false;
  const handoff = serveHandoff({
    path: handoffPath,
    sources: () =>
      manager.enrolled().map((p) => ({
        uid: p.uid,
        listenerSockets: () => p.proxy.listenerSockets(),
        stopAccepting: () => p.proxy.stopAccepting(),
        rules: () => {
          const netns = socketInode(p.netns);
          return netns === undefined ? undefined : { id: p.rulesId, netns };
        },
      })),
    onTake: () => {
      // The successor enrolls from now on: this agent would otherwise race it for new pods.
      replaced = true;
      ready = false;
      reconciler.stop();
      // closing unlinks the socket file (libuv), so the successor binds the path afresh
      cniServer.close();
    },
    log: logFn,
  });

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  // A successor still taking over keeps this agent accepting until it is done (bounded).
  if (handoff.inProgress()) {
    log.info({ waitMs: HANDOFF_SETTLE_MS }, 'stopping: waiting for the new agent to take over the listeners');
    await handoff.settled(HANDOFF_SETTLE_MS);
  }
  handoff.close();
  log.info({ drainSeconds: config.drainSeconds, replaced }, 'stopping: listeners close, open connections drain, rules stay in place');
  ready = false;
  cniWatch?.stop();
  reconciler.stop();
  await Promise.all([pods.stop(), namespaces.stop(), cluster.stop(), policies.stop()]);
  // Closing unlinks the socket's path (libuv): not when a successor bound its own there.
  if (!replaced && socketInode(config.cniSocket) === cniInode) cniServer.close();
  for (const server of [readiness, metricsServer, admin]) server.close();
  await manager.shutdown(config.drainSeconds * 1000);
  native?.stop();
  clearInterval(heapTrim);
  await identity.stop();
  return 0;
}

/** A policy changed: live inbound connections it now denies are closed. */
function reauthorize(connections: ConnectionRegistry, log: pino.Logger): void {
  const closed = connections.reauthorize();
  if (closed > 0) log.info({ closed }, 'connections closed: a policy change denies them');
}

/** Access log lines go to the agent's log at their own level, so they can be kept or dropped alone. */
function accessLogWriter(log: pino.Logger, level: NodeAgentConfig['accessLogLevel']): (entry: Record<string, unknown>) => void {
  if (level === 'off') return () => {};
  const access = log.child({ log: 'access' });
  return (entry) => access[level](entry, 'connection');
}

function cniInstallOptions(config: NodeAgentConfig) {
  return {
    confDir: config.cniConfDir,
    binDir: config.cniBinDir,
    plugin: config.cniPluginBinary ?? PACKAGED_PLUGIN_BINARY,
    pluginConfig: { agentSocket: config.cniSocket, excludeNamespaces: config.excludeNamespaces, timeoutSeconds: 5 },
  };
}
