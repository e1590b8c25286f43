import type { Handler } from '../telemetry/http-endpoints.js';
import { sendJson } from '../telemetry/http-endpoints.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import type { CertManager } from '../identity/cert-manager.js';
import type { TrustBundle } from '../identity/trust-bundle.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import type { NodeAgentConfig } from './config.js';
import type { EnrolledPod } from './enrollment-manager.js';
import type { PolicyState } from './policy-state.js';

export interface AdminState {
  config: NodeAgentConfig;
  enrolled(): EnrolledPod[];
  index(): ClusterIndex;
  policies: PolicyState;
  certs: CertManager;
  bundle: TrustBundle;
}

/**
 * The agent's admin API (DESIGN.md §7, 127.0.0.1:15000): what it enrolled,
 * what it knows of the cluster, the policies in force, its certificates
 * (never keys) and its live connections, as JSON for `warren status` & co.
 */
export function adminRoutes(s: AdminState): Record<string, Handler> {
  const workloads = () =>
    s.enrolled().map((p) => ({ pod: p.pod, uid: p.uid, ips: p.ips, identity: formatSpiffeId(p.identity), netns: p.netns }));
  const services = () => s.index().services().map((e) => ({ service: `${e.namespace}/${e.name}`, vips: e.vips, port: e.port, endpoints: e.endpoints.map((x) => `${x.ip}:${x.port}`), ...(e.waypoint ? { waypoint: e.waypoint } : {}) }));
  const policies = () => ({
    authorizationPolicies: s.policies.authorizationPolicies().map((p) => ({ policy: `${p.namespace}/${p.name}`, action: p.action, selector: p.selector ?? null, rules: p.rules.length, httpFields: p.httpFields })),
    peerAuthentications: s.policies.peerAuthentications().map((p) => ({ policy: `${p.namespace}/${p.name}`, mode: p.mode, selector: p.selector ?? null, portLevel: Object.fromEntries(p.portLevel) })),
  });
  const certs = () => ({ node: s.config.nodeName, trustDomain: s.config.trustDomain, caAddress: s.config.caAddress, trustBundleRoots: s.bundle.pems().length, certificates: s.certs.status() });
  const connections = () => s.enrolled().map((p) => ({ pod: p.pod, ...p.proxy.connectionStats() }));
  return {
    '/workloads': (_q, res) => sendJson(res, 200, { node: s.config.nodeName, enrolled: workloads(), clusterWorkloads: s.index().size.workloads }),
    '/services': (_q, res) => sendJson(res, 200, services()),
    '/policies': (_q, res) => sendJson(res, 200, policies()),
    '/certs': (_q, res) => sendJson(res, 200, certs()),
    '/connections': (_q, res) => sendJson(res, 200, connections()),
    '/config_dump': (_q, res) => sendJson(res, 200, { config: s.config, workloads: workloads(), services: services(), policies: policies(), certs: certs(), connections: connections() }),
  };
}
