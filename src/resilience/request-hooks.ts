import { setTimeout as sleep } from 'node:timers/promises';
import type { Endpoint } from '../k8s/cluster-index.js';
import type { ConnectionFacts, Forward, Plan, PlanRequest, Snapshot } from '../waypoint/request-plan.js';
import { backendService } from '../waypoint/upstream.js';
import { effectivePolicy } from './destination-rule.js';
import { faultAction, selectHttpRule } from './fault-decision.js';
import { resolveHost } from './istio-fields.js';
import { newBucket, takeToken } from './token-bucket.js';
import type { Resilience } from './resilience-context.js';
import { createUpstreamCluster, type Lease } from './upstream-cluster.js';
import { GRPC_STATUS } from './virtual-service.js';

/**
 * The resilience step of a request (docs/architecture.md §15), between
 * planning (authn, authz, HTTPRoute) and forwarding: the local rate limit
 * (429, RL), the VirtualService rule (fault delay or abort, FI; its route
 * and subset) and the DestinationRule's upstream cluster the forwarder
 * admits through, picks endpoints from and reports results to.
 */
const MAX_STATE = 10_000;

function routeRef(plan: Forward): { namespace: string; name: string } | undefined {
  // request-plan names HTTPRoute rules "HTTPRoute ns/name rule i"
  const m = /^HTTPRoute ([^/ ]+)\/([^ ]+) rule \d+$/.exec(plan.route ?? '');
  return m ? { namespace: m[1]!, name: m[2]! } : undefined;
}

function respond(plan: Plan, status: number, body: string, flags: string, headers: Record<string, string>): Plan {
  return { kind: 'respond', status, body, flags, headers, decision: plan.decision, ...(plan.auth ? { auth: plan.auth } : {}), ...(plan.service ? { service: plan.service } : {}), ...(plan.route ? { route: plan.route } : {}) };
}

function subsetEndpoints(s: Snapshot, endpoints: readonly Endpoint[], labels: Readonly<Record<string, string>>): Endpoint[] {
  return endpoints.filter((e) => {
    const w = s.index.workloadByIp(e.ip);
    return w !== undefined && Object.entries(labels).every(([k, v]) => w.labels[k] === v);
  });
}

export function applyResilience(r: Resilience, s: Snapshot, c: ConnectionFacts, input: PlanRequest, planned: Plan): Plan {
  if (planned.kind !== 'forward') return planned;
  let plan: Forward & Plan = planned;
  const table = r.table();
  const dialed = s.index.serviceByVip(c.destination.ip, c.destination.port);
  const dialedRef = dialed && { namespace: dialed.namespace, name: dialed.name };

  const rl = table.rateLimit(dialedRef, routeRef(plan));
  if (rl !== undefined) {
    let b = r.buckets.get(rl.key);
    if (b === undefined) {
      if (r.buckets.size >= MAX_STATE) r.buckets.clear();
      b = newBucket(rl.limit, r.clock.now());
      r.buckets.set(rl.key, b);
    }
    const t = takeToken(b, rl.limit, r.clock.now());
    const headers = { 'x-ratelimit-limit': String(rl.limit.requests), 'x-ratelimit-remaining': String(t.remaining), 'x-ratelimit-reset': String(t.resetSeconds) };
    if (!t.allowed) return respond(plan, 429, 'local_rate_limited\n', 'RL', headers);
    const mod = plan.responseHeaders ?? { set: [], add: [], remove: [] };
    plan = { ...plan, responseHeaders: { ...mod, set: [...mod.set, ...Object.entries(headers).map(([name, value]) => ({ name, value }))] } };
  }

  let subset: string | undefined;
  const vs = dialedRef && plan.route === undefined ? table.virtualService(dialedRef) : undefined;
  if (vs !== undefined && dialed !== undefined) {
    const rule = selectHttpRule(vs.http, input.header);
    const name = `VirtualService ${vs.namespace}/${vs.name}`;
    if (rule === undefined) return respond(plan, 404, 'route not found\n', 'NR', {});
    const ruleName = `${name} http ${vs.http.indexOf(rule)}`;
    const fault = faultAction(rule.fault, r.clock.random);
    if (fault.abort !== undefined) {
      const a = fault.abort;
      const aborted = 'httpStatus' in a ? respond(plan, a.httpStatus, 'fault filter abort\n', 'FI', {}) : respond(plan, 200, '', 'FI', { 'content-type': 'application/grpc', 'grpc-status': String(GRPC_STATUS.indexOf(a.grpcStatus as (typeof GRPC_STATUS)[number]) + 1), 'grpc-message': 'fault filter abort' });
      return { ...aborted, route: ruleName };
    }
    let at = r.clock.random() * 100;
    const dest = rule.route.find((d) => (at -= d.weight) < 0) ?? rule.route[rule.route.length - 1]!;
    const host = resolveHost(dest.destination.host, vs.namespace, r.clusterDomain);
    const target = host && backendService(s.index, { kind: 'Service', group: '', ...host, weight: 1, ...(dest.destination.port ? { port: dest.destination.port } : {}) }, dialed.port);
    if (target === undefined) return { ...respond(plan, 503, 'no healthy upstream\n', 'UH', {}), route: ruleName };
    subset = dest.destination.subset;
    let endpoints = target.endpoints;
    if (subset !== undefined) {
      const def = table.destinationRule({ namespace: target.namespace, name: target.name })?.subsets.find((x) => x.name === subset);
      // Istio: a subset no DestinationRule defines has no endpoints
      endpoints = def === undefined ? [] : subsetEndpoints(s, endpoints, def.labels);
    }
    if (endpoints.length === 0) return { ...respond(plan, 503, 'no healthy upstream\n', 'UH', {}), route: ruleName };
    plan = { ...plan, service: target, endpoints, route: ruleName, ...(fault.delayMs !== undefined ? { delayMs: fault.delayMs } : {}) };
  }

  const svc = plan.service ?? dialed;
  const dr = svc && r.table().destinationRule({ namespace: svc.namespace, name: svc.name });
  if (dr === undefined || svc === undefined) return plan;
  const policy = effectivePolicy(dr, svc.port, subset);
  if (policy.connectionPool === undefined && policy.outlierDetection === undefined && policy.loadBalancer === undefined) return plan;
  const key = `${dr.namespace}/${dr.name} ${svc.namespace}/${svc.name}:${svc.port}${subset ? ` subset ${subset}` : ''}`;
  let cluster = r.clusters.get(key);
  if (cluster === undefined) {
    if (r.clusters.size >= MAX_STATE) r.clusters.clear();
    cluster = createUpstreamCluster(key, policy, r.clock);
    r.clusters.set(key, cluster);
  } else cluster.update(policy);
  return { ...plan, cluster };
}

export const OVERFLOW_BODY = 'upstream connect error or disconnect/reset before headers. reset reason: overflow\n';

/**
 * What both forwarders do before the first upstream try: the fault delay
 * (then `delayed()`: flag DI), then admission to the DestinationRule's pool,
 * the lease held until the client's side closes. 'overflow' → 503 UO;
 * 'gone' → the client left while waiting.
 */
export async function beforeUpstream(plan: Forward, client: { readonly closed: boolean; once(event: 'close', fn: () => void): unknown }, delayed: () => void): Promise<{ lease?: Lease } | 'overflow' | 'gone'> {
  if (plan.delayMs !== undefined) {
    await sleep(plan.delayMs);
    delayed();
  }
  if (plan.cluster === undefined) return {};
  const lease = await plan.cluster.admit();
  if (lease === undefined) return 'overflow';
  if (client.closed) {
    lease.release();
    return 'gone';
  }
  client.once('close', () => lease.release());
  return { lease };
}
