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

test('admin /memory: the process memory and the C heap, so an RSS growth can be placed in the JS heap, in C-heap blocks still held, or in free pages', () =>
  withAdmin(async (get) => {
    const held = Buffer.alloc(8 * 2 ** 20, 1); // outside the JS heap: `external`, and malloc'd
    const { status, body } = await get('/memory');
    assert.equal(status, 200);
    assert.equal(body.collected, false, 'no GC unless asked with ?gc=1');
    assert.ok(body.rss >= body.heapUsed && body.external >= held.length, JSON.stringify(body));
    const c = body.cHeap as Record<string, number>;
    assert.deepEqual(Object.keys(c).sort(), ['arenaBytes', 'freeBytes', 'inUseBytes', 'mmappedBytes']);
    assert.ok(c.inUseBytes! >= held.length && c.inUseBytes! >= c.mmappedBytes!, `the 8 MiB buffer is counted as in use: ${JSON.stringify(c)}`);
    assert.equal(held[held.length - 1], 1);
  }));
