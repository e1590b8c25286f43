import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { adminRoutes } from '../../src/agent/admin-api.js';
import { loadNodeAgentConfig } from '../../src/agent/config.js';
import { createCaClient } from '../../src/identity/ca-client.js';
import { CertManager } from '../../src/identity/cert-manager.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { parseAuthorizationPolicy } from '../../src/policy/authorization.js';
import { serveEndpoints } from '../../src/telemetry/http-endpoints.js';

const pod = (namespace: string, name: string, ip: string, sa: string, labels: Record<string, string> = {}) => ({
  metadata: { namespace, name, uid: `uid-${name}`, labels, annotations: { 'warren.io/redirection': 'enabled' } },
  spec: { containers: [], nodeName: 'node-2', serviceAccountName: sa },
  status: { phase: 'Running', podIPs: [{ ip }] },
});

/** The admin API of an agent with nothing enrolled, on loopback: what `warren policies explain` and `warren status` read. */
async function withAdmin(fn: (get: (path: string) => Promise<{ status: number; body: any }>) => Promise<void>): Promise<void> {
  const bundle = new TrustBundle();
  const certs = new CertManager({ ca: createCaClient({ address: 'https://127.0.0.1:9', tokenFile: '/nonexistent', bundle }), bundle, trustDomain: 'cluster.local', log: () => {} });
  const index = buildClusterIndex([pod('demo', 'client-b', '10.244.1.3', 'client-b'), pod('demo', 'web', '10.244.2.2', 'web', { app: 'web' })], [], []);
  const deny = parseAuthorizationPolicy({ metadata: { namespace: 'demo', name: 'deny-b' }, spec: { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/client-b'] } }] }] } });
  const policies = { authorizationPolicies: () => [deny], peerAuthentications: () => [], synced: Promise.resolve(), stop: async () => {} };
  const config = loadNodeAgentConfig({ nodeName: 'node-2', adminAddress: '127.0.0.1:0' }, {});
  const server = await serveEndpoints(config.adminAddress, adminRoutes({ config, enrolled: () => [], index: () => index, policies, certs, bundle, backend: 'nft' }));
  const { port } = server.address() as AddressInfo;
  try {
    await fn(async (path) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.json() };
    });
  } finally {
    server.close();
  }
}

test('admin /explain answers with the decision, and 400 naming the parameter or 404 for a pod that is not there', () =>
  withAdmin(async (get) => {
    const ok = await get(`/explain?from=demo/client-b&to=${encodeURIComponent('demo/web:8080')}`);
    assert.equal(ok.status, 200);
    assert.deepEqual([ok.body.decision, ok.body.policy, ok.body.rule, ok.body.mtls, ok.body.to.node], ['deny', 'demo/deny-b', 0, true, 'node-2']);
    assert.equal(ok.body.from.principal, 'spiffe://cluster.local/ns/demo/sa/client-b');
    const missing = await get('/explain?to=demo/web:8080');
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.body, { message: 'from: required (NS/POD or an IP address)', code: 'ERR_EXPLAIN_QUERY' });
    const unknown = await get('/explain?from=demo/nope&to=demo/web:8080');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.message, /^from: no pod demo\/nope/);
  }));

test('admin /status: backend, enrolled pods, certificates, policies and live connections in one answer', () =>
  withAdmin(async (get) => {
    const { status, body } = await get('/status');
    assert.equal(status, 200);
    assert.deepEqual(body, { node: 'node-2', backend: 'nft', enrolled: 0, certificates: { count: 0, valid: 0, soonestExpiry: null }, policies: { authorization: 1, peerAuthentication: 0 }, connections: 0 });
  }));
