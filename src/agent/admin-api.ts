import type { Handler } from '../telemetry/http-endpoints.js';
import { sendJson } from '../net/respond.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import type { CertManager } from '../identity/cert-manager.js';
import type { TrustBundle } from '../identity/trust-bundle.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import { clientErrorStatus } from '../errors/http-status.js';
import type { WaypointIndex } from '../k8s/waypoint-index.js';
import { WarrenError } from '../errors/warren-error.js';
import { explainConnection } from '../policy/explain.js';
import { cHeapStats } from '../native/c-heap.js';
import type { AdminAnswers, AdminCerts, AdminConnections, AdminPolicies, AdminService, AdminStatus, AdminWorkload } from './admin-types.js';
import type { NodeAgentConfig } from './config.js';
import type { EnrolledPod } from './enrollment-manager.js';
import type { PolicyState } from './policy-state.js';

export interface AdminState {
  config: NodeAgentConfig;
  enrolled(): EnrolledPod[];
  index(): ClusterIndex;
  waypoints(): WaypointIndex;
  policies: PolicyState;
  certs: CertManager;
  bundle: TrustBundle;
  /** the redirection backend in use: nft or iptables */
  backend: string;
}

/**
 * Services whose waypoint cannot take their traffic (docs/architecture.md §13): missing,
 * without a ready pod, or another namespace's that does not admit theirs (refused), or not
 * for service traffic (waypoint-for: not used).
 */
export function waypointProblems(w: WaypointIndex): Array<{ service: string; waypoint: string; problem: string }> {
  return w.serviceBindings().flatMap(({ service, binding: b }) => {
    const waypoint = `${b.waypoint.namespace}/${b.waypoint.name}`;
    if (b.state === 'bound') return b.waypoint.ready.length > 0 ? [] : [{ service, waypoint, problem: 'no ready waypoint pod: its traffic is refused' }];
    return [{ service, waypoint, problem: b.state === 'missing' ? `${b.message}: its traffic is refused` : b.message }];
  });
}

/**
 * The agent's admin API (docs/architecture.md §7, 127.0.0.1:15000): what it enrolled,
 * what it knows of the cluster, the policies in force, its certificates
 * (never keys) and its live connections, as JSON for `warren status` & co.
 */
export function adminRoutes(s: AdminState): Record<string, Handler> {
  const workloads = (): AdminWorkload[] =>
    s.enrolled().map((p) => ({ pod: p.pod, uid: p.uid, ips: p.ips, identity: formatSpiffeId(p.identity), netns: p.netns }));
  const services = (): AdminService[] => s.index().services().map((e) => ({ service: `${e.namespace}/${e.name}`, vips: e.vips, port: e.port, endpoints: e.endpoints.map((x) => `${x.ip}:${x.port}`), ...(e.waypoint ? { waypoint: e.waypoint } : {}) }));
  const policies = (): AdminPolicies => ({
    authorizationPolicies: s.policies.authorizationPolicies().map((p) => ({ policy: `${p.namespace}/${p.name}`, action: p.action, selector: p.selector ?? null, rules: p.rules.length, httpFields: p.httpFields, dryRun: p.dryRun, targeted: p.targeted, ...(p.invalid !== undefined ? { invalid: p.invalid } : {}) })),
    peerAuthentications: s.policies.peerAuthentications().map((p) => ({ policy: `${p.namespace}/${p.name}`, mode: p.mode, selector: p.selector ?? null, portLevel: Object.fromEntries(p.portLevel) })),
  });
  const certs = (): AdminCerts => ({ node: s.config.nodeName, trustDomain: s.config.trustDomain, caAddress: s.config.caAddress, trustBundleRoots: s.bundle.pems().length, certificates: s.certs.status() });
  const connections = (): AdminConnections[] =>
    s.enrolled().map((p) => ({
      pod: p.pod,
      captured: p.connections.count('outbound') + p.connections.count('inbound'),
      plaintextInbound: p.connections.count('inbound'),
      inboundStreams: p.connections.count('hbone'),
      outboundTunnels: p.proxy.outboundTunnels(),
    }));
  const status = (): AdminStatus => {
    const certificates = s.certs.status();
    const expiries = certificates.flatMap((c) => (c.notAfter ? [c.notAfter] : [])).sort();
    return {
      node: s.config.nodeName,
      backend: s.backend,
      enrolled: s.enrolled().length,
      certificates: { count: certificates.length, valid: certificates.filter((c) => c.state === 'valid').length, soonestExpiry: expiries[0] ?? null },
      policies: { authorization: s.policies.authorizationPolicies().length, peerAuthentication: s.policies.peerAuthentications().length },
      waypoints: waypointProblems(s.waypoints()),
      // each proxied leg once: captured connections (outbound and plaintext inbound) and inbound HBONE streams
      connections: s.enrolled().reduce((n, p) => n + p.connections.count(), 0),
    };
  };
  // Memory as the process sees it; `?gc=1` collects garbage first when node runs with
  // --expose-gc (bench/enrollment.ts), so growth is measured without what is merely uncollected.
  const memory: Handler = (req, res) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    const collect = new URL(req.url ?? '/', 'http://admin').searchParams.get('gc') === '1' && gc !== undefined;
    if (collect) gc();
    sendJson(res, 200, { collected: collect, enrolled: s.enrolled().length, ...process.memoryUsage(), cHeap: cHeapStats() });
  };
  const explain: Handler = (req, res) => {
    const query = new URL(req.url ?? '/', 'http://admin').searchParams;
    const state = { index: s.index(), authorizationPolicies: s.policies.authorizationPolicies(), peerAuthentications: s.policies.peerAuthentications(), rootNamespace: s.config.rootNamespace, trustDomain: s.config.trustDomain, waypoints: s.waypoints() };
    try {
      sendJson(res, 200, explainConnection(state, { from: query.get('from'), to: query.get('to') }));
    } catch (err) {
      // a bad parameter is the client's mistake, an unknown pod is not found; anything else is ours (500)
      const status = clientErrorStatus(err);
      if (status === undefined || !(err instanceof WarrenError)) throw err;
      sendJson(res, status, { message: err.message, code: err.code });
    }
  };
  return {
    '/workloads': (_q, res) => sendJson(res, 200, { node: s.config.nodeName, enrolled: workloads(), clusterWorkloads: s.index().size.workloads } satisfies AdminAnswers['/workloads']),
    '/services': (_q, res) => sendJson(res, 200, services()),
    '/policies': (_q, res) => sendJson(res, 200, policies()),
    '/certs': (_q, res) => sendJson(res, 200, certs()),
    '/connections': (_q, res) => sendJson(res, 200, connections()),
    '/status': (_q, res) => sendJson(res, 200, status()),
    '/explain': explain,
    '/memory': memory,
    '/config_dump': (_q, res) => sendJson(res, 200, { config: s.config, status: status(), workloads: workloads(), services: services(), policies: policies(), certs: certs(), connections: connections() }),
  };
}
