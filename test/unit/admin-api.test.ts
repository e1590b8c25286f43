import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestAdmin } from '../helpers/admin-server.js';

async function withAdmin(fn: (get: (path: string) => Promise<{ status: number; body: any }>) => Promise<void>): Promise<void> {
  const admin = await startTestAdmin();
  try {
    await fn(async (path) => {
      const res = await fetch(`http://${admin.adminAddress}${path}`);
      return { status: res.status, body: await res.json() };
    });
  } finally {
    admin.close();
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
    assert.deepEqual(body, { node: 'node-2', backend: 'nft', enrolled: 0, certificates: { count: 0, valid: 0, soonestExpiry: null }, policies: { authorization: 1, peerAuthentication: 0 }, waypoints: [], connections: 0 });
  }));
