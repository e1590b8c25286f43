import { fileURLToPath } from 'node:url';
import { ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { installCniPlugin, watchCniConfig } from '../cni/installer.js';
import { WarrenError } from '../errors/warren-error.js';
import { REDIRECTION_ANNOTATION, REDIRECTION_REASON_ANNOTATION } from '../k8s/enrollment.js';
import { loadKubeConfig, withSharedConnections } from '../k8s/kubeconfig.js';
import { NetnsFinder } from '../k8s/netns-discovery.js';
import { startResilientInformer } from '../k8s/resilient-informer.js';
import { chooseBackend, createBackend, gatherBackendFacts } from '../redirect/detect.js';
import { systemRunner } from '../redirect/runner.js';
import { handleCniAdd } from './cni-add.js';
import { startCniServer, type CniRequest } from './cni-server.js';
import { hboneLimits, type NodeAgentConfig } from './config.js';
import { EnrollmentManager, type RedirectionState } from './enrollment-manager.js';
import { planEnrollment, podView } from './enrollment-plan.js';
import { startWorkloadIdentity } from './workload-identity.js';
import { coalesced } from './coalesced.js';
import type { DataPlane } from '../tunnel/dataplane.js';
import { HboneGuard } from '../tunnel/hbone-limits.js';
import { startClusterState } from './cluster-state.js';
import { startPolicyState } from './policy-state.js';
import { effectiveMtlsMode } from '../policy/peer-authentication.js';
import { authorize, type AuthzDecision, type L4Request } from '../policy/authorization.js';
import { serveEndpoints } from '../telemetry/http-endpoints.js';
import { adminRoutes } from './admin-api.js';
import { agentMetrics } from '../telemetry/agent-metrics.js';
import { ConnectionTelemetry } from '../telemetry/connection-telemetry.js';
import { uninstallNode } from './uninstall.js';

/** The static plugin (src/cni/warren-cni.c) node-gyp builds beside the addon: what the container image ships. */
const PACKAGED_PLUGIN_BINARY = fileURLToPath(new URL('../../../build/Release/warren-cni', import.meta.url));
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

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
  const kc = withSharedConnections(loadKubeConfig(config.kubeconfig));
  const core = kc.makeApiClient(CoreV1Api);
  if (config.uninstall) return uninstallNode(config, core, logFn);
  const backendName = chooseBackend(config.redirectBackend, await gatherBackendFacts(systemRunner));
  const backend = createBackend(backendName, systemRunner);
  const policy = { excludedNamespaces: new Set(config.excludeNamespaces) };

  const annotate = async (pod: { namespace: string; name: string }, state: RedirectionState, reason?: string): Promise<void> => {
    await core.patchNamespacedPod(
      { namespace: pod.namespace, name: pod.name, body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: state, [REDIRECTION_REASON_ANNOTATION]: reason ?? null } } } },
      mergePatch,
    );
  };

  const registry = new Registry();
  const agent = agentMetrics(registry, () => manager.enrolled().length);
  const identity = startWorkloadIdentity(kc, config, registry, logFn);
  const cluster = startClusterState(kc, logFn);
  const policies = startPolicyState(kc, logFn, () => reauthorize(), config.nodeName);
  const dataplane: DataPlane = {
    index: () => cluster.index(),
    waypoints: () => cluster.waypoints(),
    trustDomain: config.trustDomain,
    bundle: identity.bundle,
    certificate: (id) => identity.certs.current(id),
    authorize: (request) => {
      const decision = authorize(policies.authorizationPolicies(), config.rootNamespace, request);
      if (!decision.allow) agent.policyDenials.inc();
      if (decision.dryRun !== undefined) reportDryRun(decision, request);
      return decision;
    },
    plaintextAllowed: (pod, port) => {
      const allowed = effectiveMtlsMode(policies.peerAuthentications(), config.rootNamespace, pod, port) !== 'STRICT';
      if (!allowed) agent.policyDenials.inc();
      return allowed;
    },
    hbone: new HboneGuard(hboneLimits(config), (reason, detail) => {
      agent.hboneRefused.inc({ reason });
      log.warn({ reason, peer: detail.peer }, detail.message);
    }),
    loopRefused: (path, reason) => {
      agent.loopRefused.inc({ path });
      log.warn({ path }, `refused a connection into the agent itself: ${reason}`);
    },
  };
  const telemetry = new ConnectionTelemetry({ registry, index: () => cluster.index(), clusterDomain: config.clusterDomain, accessLog: accessLogWriter(log, config.accessLogLevel) });
  const netnsFinder = new NetnsFinder();
  const manager = new EnrollmentManager({
    dataplane,
    backend,
    findNetns: (pod) => netnsFinder.find(pod),
    acquireIdentity: (pod) => identity.acquire(pod),
    releaseIdentity: (uid) => identity.release(uid),
    annotate,
    telemetry,
    ruleError: (operation) => agent.ruleErrors.inc({ operation }),
    log: logFn,
    drainMs: config.drainSeconds * 1000,
  });

  // Until every informer has synced, CNI ADDs get "try again later" and reconcile waits.
  let synced = false;
  // Bursts of informer events coalesce into one pass; a failed enrollment
  // (netns not found yet, rules refused) is retried later, not forgotten.
  const reconcileSoon = coalesced(20, () => reconcile());
  const reconcileLater = coalesced(2000, () => reconcile());
  const pods = startResilientInformer<V1Pod>(kc, {
    path: '/api/v1/pods',
    list: () => core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${config.nodeName}` }),
    fieldSelector: `spec.nodeName=${config.nodeName}`,
    onChange: reconcileSoon,
    log: logFn,
  });
  const namespaces = startResilientInformer<V1Namespace>(kc, { path: '/api/v1/namespaces', list: () => core.listNamespace(), onChange: reconcileSoon, log: logFn });
  const namespaceLabels = (): Map<string, Record<string, string>> => new Map(namespaces.list().map((n) => [n.metadata?.name ?? '', n.metadata?.labels ?? {}]));

  /** istio.io/dry-run policies are counted, and logged when enforcing them would change the decision (debug otherwise). */
  function reportDryRun(d: AuthzDecision, r: L4Request): void {
    const would = d.dryRun!.allow ? 'allow' : 'deny';
    agent.policyDryRun.inc({ decision: would });
    const fields = { source: r.source.principal ?? r.source.ip, destination: `${r.destination.namespace} ${r.destination.ip}:${r.destination.port}`, enforced: d.reason, dryRun: d.dryRun!.reason };
    if (d.dryRun!.allow !== d.allow) log.info(fields, `dry-run: the dry-run policies would ${would} this connection`);
    else log.debug(fields, 'dry-run: the dry-run policies agree with the enforced decision');
  }

  /** A policy changed: live inbound connections it now denies are closed. */
  function reauthorize(): void {
    let closed = 0;
    for (const p of manager.enrolled()) closed += p.proxy.reauthorize();
    if (closed > 0) log.info({ closed }, 'connections closed: a policy change denies them');
  }

  function reconcile(): void {
    // Pods enrolled before policies and PeerAuthentications are known would run unprotected.
    if (!synced) return;
    const views = pods.list().map(podView).filter((p) => p.uid !== '');
    const plan = planEnrollment(views, namespaceLabels(), manager.enrolledUids(), policy);
    const byUid = new Map(views.map((p) => [p.uid, p]));
    for (const pod of plan.enroll) void manager.enroll(pod).catch(() => reconcileLater());
    let closed = 0;
    for (const pod of views) closed += manager.relabel(pod.uid, pod.labels);
    if (closed > 0) log.info({ closed }, 'connections closed: pods were relabeled and a policy now denies them');
    for (const uid of plan.unenroll) {
      const pod = byUid.get(uid);
      void manager.unenroll(uid, { podGone: pod === undefined, ...(pod ? { podRef: pod } : {}) });
    }
  }

  const cniServer = await startCniServer(
    config.cniSocket,
    {
      add: async (req: CniRequest) => {
        const timer = agent.cniAdd.startTimer();
        let result = 'error';
        try {
          const answer = await handleCniAdd(req, {
            nodeName: config.nodeName,
            policy,
            synced: () => synced,
            readPod: (r) => readPod(core, r),
            namespaceLabels: async (ns) => namespaceLabels().get(ns) ?? (await namespaceLabelsFromApi(core, ns)),
            enroll: (pod, netns) => manager.enroll(pod, netns),
          });
          result = answer.enrolled ? 'enrolled' : 'skipped';
          return answer;
        } finally {
          timer({ result });
        }
      },
      del: async (req: CniRequest) => manager.unenroll(req.podUid, { podGone: true }),
    },
    logFn,
  );

  const cniLog = (msg: string): void => logFn(msg, { cniConfDir: config.cniConfDir });
  const cniOptions = { ...cniInstallOptions(config), log: cniLog };
  if (config.installCni) {
    const installed = installCniPlugin(cniOptions);
    log.info({ plugin: cniOptions.plugin, binPath: installed.binPath, confPath: installed.confPath }, 'CNI plugin installed');
  }
  const cniWatch = config.installCni ? watchCniConfig(cniOptions) : undefined;

  let ready = false;
  const readiness = await serveEndpoints(config.readinessAddress, {
    '/healthz/ready': (_req, res) => void res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'initial sync not done\n'),
  });
  const metrics = await serveEndpoints(config.metricsAddress, {
    '/metrics': async (_req, res) => void res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics()),
  });
  const admin = await serveEndpoints(
    config.adminAddress,
    adminRoutes({ config, enrolled: () => manager.enrolled(), index: () => cluster.index(), waypoints: () => cluster.waypoints(), policies, certs: identity.certs, bundle: identity.bundle, backend: backendName }),
  );
  await Promise.all([pods.synced, namespaces.synced, cluster.synced, policies.synced]);
  synced = true;
  reconcile();
  ready = true;
  log.info({ backend: backendName, cniSocket: config.cniSocket }, 'node agent ready');

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  log.info({ drainSeconds: config.drainSeconds }, 'stopping: listeners close, open connections drain, rules stay in place');
  ready = false;
  cniWatch?.stop();
  reconcileSoon.cancel();
  reconcileLater.cancel();
  await Promise.all([pods.stop(), namespaces.stop(), cluster.stop(), policies.stop()]);
  cniServer.close();
  for (const server of [readiness, metrics, admin]) server.close();
  await manager.shutdown(config.drainSeconds * 1000);
  await identity.stop();
  return 0;
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

async function readPod(core: CoreV1Api, req: CniRequest): Promise<V1Pod> {
  try {
    return await core.readNamespacedPod({ namespace: req.podNamespace, name: req.podName });
  } catch (err) {
    if (err instanceof ApiException) throw new WarrenError('ERR_CNI_POD', `pod ${req.podNamespace}/${req.podName}: the API server answered ${err.code}`, { retryable: true });
    throw err;
  }
}

async function namespaceLabelsFromApi(core: CoreV1Api, namespace: string): Promise<Record<string, string>> {
  return (await core.readNamespace({ name: namespace })).metadata?.labels ?? {};
}
