import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { V1Pod } from '@kubernetes/client-node';
import { adminRoutes } from '../../src/agent/admin-api.js';
import { loadNodeAgentConfig } from '../../src/agent/config.js';
import { createCaClient } from '../../src/identity/ca-client.js';
import { CertManager } from '../../src/identity/cert-manager.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { buildWaypointIndex } from '../../src/k8s/waypoint-index.js';
import { parseAuthorizationPolicy } from '../../src/policy/authorization.js';
import { serveEndpoints } from '../../src/telemetry/http-endpoints.js';

const pod = (namespace: string, name: string, ip: string, sa: string, labels: Record<string, string> = {}): V1Pod => ({
  metadata: { namespace, name, uid: `uid-${name}`, labels, annotations: { 'warren.io/redirection': 'enabled' } },
  spec: { containers: [], nodeName: 'node-2', serviceAccountName: sa },
  status: { phase: 'Running', podIPs: [{ ip }] },
});

export interface TestAdmin {
  adminAddress: string;
  readinessAddress: string;
  close(): void;
}

/**
 * A node agent's admin API (the real routes) and readiness endpoint on
 * loopback, as node-2's agent with nothing enrolled: pods demo/client-b and
 * demo/web (app=web) in its cluster view, and AuthorizationPolicy
 * demo/deny-b denying client-b's principal.
 */
export async function startTestAdmin(): Promise<TestAdmin> {
  const bundle = new TrustBundle();
  const certs = new CertManager({ ca: createCaClient({ address: 'https://127.0.0.1:9', tokenFile: '/nonexistent', bundle }), bundle, trustDomain: 'cluster.local', log: () => {} });
  const index = buildClusterIndex([pod('demo', 'client-b', '10.244.1.3', 'client-b'), pod('demo', 'web', '10.244.2.2', 'web', { app: 'web' })], [], []);
  const deny = parseAuthorizationPolicy({ metadata: { namespace: 'demo', name: 'deny-b' }, spec: { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/client-b'] } }] }] } });
  const policies = { authorizationPolicies: () => [deny], peerAuthentications: () => [], synced: Promise.resolve(), stop: async () => {} };
  const config = loadNodeAgentConfig({ nodeName: 'node-2', adminAddress: '127.0.0.1:0' }, {});
  const noWaypoints = buildWaypointIndex({ namespaces: [], services: [], pods: [], gateways: [] });
  const admin = await serveEndpoints(config.adminAddress, adminRoutes({ config, enrolled: () => [], index: () => index, waypoints: () => noWaypoints, policies, certs, bundle, backend: 'nft' }));
  const readiness = await serveEndpoints('127.0.0.1:0', { '/healthz/ready': (_q, res) => void res.writeHead(200).end('ready\n') });
  const address = (s: Server): string => `127.0.0.1:${(s.address() as AddressInfo).port}`;
  return {
    adminAddress: address(admin),
    readinessAddress: address(readiness),
    close() {
      admin.close();
      readiness.close();
    },
  };
}
