import type pino from 'pino';
import { authorize, type AuthzDecision, type L4Request } from '../policy/authorization.js';
import { effectiveMtlsMode } from '../policy/peer-authentication.js';
import type { agentMetrics } from '../telemetry/agent-metrics.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import type { WaypointIndex } from '../k8s/waypoint-index.js';
import type { DataPlane } from '../tunnel/dataplane.js';
import { HboneGuard } from '../tunnel/hbone-limits.js';
import { hboneLimits, type NodeAgentConfig } from './config.js';
import type { PolicyState } from './policy-state.js';
import type { WorkloadIdentity } from './workload-identity.js';

export interface AgentDataPlaneDeps {
  config: NodeAgentConfig;
  index(): ClusterIndex;
  waypoints(): WaypointIndex;
  identity: WorkloadIdentity;
  policies: PolicyState;
  metrics: ReturnType<typeof agentMetrics>;
  log: pino.Logger;
}

/** What every pod's proxy shares (tunnel/dataplane.ts), with the agent's metrics and logs on its decisions. */
export function agentDataPlane({ config, index, waypoints, identity, policies, metrics, log }: AgentDataPlaneDeps): DataPlane {
  return {
    index,
    waypoints,
    trustDomain: config.trustDomain,
    bundle: identity.bundle,
    certificate: (id) => identity.certs.current(id),
    authorize: (request) => {
      const decision = authorize(policies.authorizationPolicies(), config.rootNamespace, request);
      if (!decision.allow) metrics.policyDenials.inc();
      if (decision.dryRun !== undefined) reportDryRun(decision, request);
      return decision;
    },
    plaintextAllowed: (pod, port) => {
      const allowed = effectiveMtlsMode(policies.peerAuthentications(), config.rootNamespace, pod, port) !== 'STRICT';
      if (!allowed) metrics.policyDenials.inc();
      return allowed;
    },
    hbone: new HboneGuard(hboneLimits(config), (reason, detail) => {
      metrics.hboneRefused.inc({ reason });
      log.warn({ reason, peer: detail.peer }, detail.message);
    }),
    loopRefused: (path, reason) => {
      metrics.loopRefused.inc({ path });
      log.warn({ path }, `refused a connection into the agent itself: ${reason}`);
    },
  };

  /** istio.io/dry-run policies are counted, and logged when enforcing them would change the decision (debug otherwise). */
  function reportDryRun(d: AuthzDecision, r: L4Request): void {
    const would = d.dryRun!.allow ? 'allow' : 'deny';
    metrics.policyDryRun.inc({ decision: would });
    const fields = { source: r.source.principal ?? r.source.ip, destination: `${r.destination.namespace} ${r.destination.ip}:${r.destination.port}`, enforced: d.reason, dryRun: d.dryRun!.reason };
    if (d.dryRun!.allow !== d.allow) log.info(fields, `dry-run: the dry-run policies would ${would} this connection`);
    else log.debug(fields, 'dry-run: the dry-run policies agree with the enforced decision');
  }
}
