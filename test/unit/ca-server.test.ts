import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { kubeconfig } from '../../src/sim/apiserver/kubeconfig.js';
import { ISSUER } from '../../src/sim/apiserver/tokens.js';
import { CA_TOKEN_AUDIENCE } from '../../src/identity/ca-client.js';
import { loadCa, signServingCert, type CaMaterial } from '../../src/ca/signer.js';
import { startCaServer, type RunningCaServer } from '../../src/ca/server.js';
import { loadOrCreateRoot } from '../../src/ca/root-store.js';
import type { CallerLimits } from '../../src/ca/caller-limits.js';
import { createWorkloadKey } from '../../src/identity/csr.js';
import { formatSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { verifyPeer } from '../../src/identity/verify-peer.js';
import { startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

const AGENT_SA = 'system:serviceaccount:warren-system:warren-node';
const web: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };
const db: SpiffeId = { ...web, serviceAccount: 'db' };

let api: TestApiServer;
let ca: RunningCaServer;
let root: CaMaterial;
let agentToken: string;

before(async () => {
  api = await startTestApiServer();
  const core = api.kc.makeApiClient(CoreV1Api);
  for (const name of ['warren-system', 'shop']) await core.createNamespace({ body: { metadata: { name } } });
  for (const name of ['node-1', 'node-2']) await core.createNode({ body: { metadata: { name } } });
  for (const [ns, sa] of [['warren-system', 'warren-node'], ['shop', 'web'], ['shop', 'db']] as const) await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  const pod = (ns: string, name: string, node: string, sa: string) =>
    core.createNamespacedPod({ namespace: ns, body: { metadata: { name }, spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'c', image: 'sleep' }] } } });
  const agentPod = await pod('warren-system', 'warren-node-1', 'node-1', 'warren-node');
  await pod('shop', 'web-1', 'node-1', 'web');
  await pod('shop', 'db-1', 'node-2', 'db');
  const tr = await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [CA_TOKEN_AUDIENCE], boundObjectRef: { kind: 'Pod', name: 'warren-node-1', uid: agentPod.metadata!.uid! } } } });
  agentToken = tr.status!.token!;
  root = await loadOrCreateRoot(core, 'warren-system', 'cluster.local');
  ca = await startTestCa(api.kc);
});

/** A CA on loopback signing with `root`, asking the API server of `kc`. */
async function startTestCa(kc: KubeConfig, callerLimits?: CallerLimits): Promise<RunningCaServer> {
  const loaded = await loadCa(root);
  return startCaServer({
    kc,
    ca: loaded,
    trustDomain: 'cluster.local',
    certTtlMs: 3_600_000,
    allowedCallers: [AGENT_SA],
    host: '127.0.0.1',
    port: 0,
    serving: await signServingCert(loaded, ['localhost'], ['127.0.0.1'], 3_600_000),
    log: () => {},
    ...(callerLimits ? { callerLimits } : {}),
  });
}

after(async () => {
  await ca.close();
  await api.stop();
});

function post(body: unknown, token: string | undefined, port = ca.port, localAddress = '127.0.0.1'): Promise<{ status: number; body: any; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, localAddress, path: '/v1/certificates', method: 'POST', ca: root.certPem, servername: 'localhost', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()), ...(res.headers['retry-after'] ? { retryAfter: res.headers['retry-after'] } : {}) }));
      },
    );
    req.on('error', reject);
    req.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
}

test("the node agent gets a certificate for a pod identity on its node, verifiable against the root", async () => {
  const key = await createWorkloadKey(web);
  const res = await post({ csr: key.csrPem, identity: formatSpiffeId(web) }, agentToken);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(verifyPeer(res.body.certChain.slice(0, 1), [root.certPem], { trustDomain: 'cluster.local', expected: [web] }), web);
});

test('an identity whose pods run only on another node is 403', async () => {
  const key = await createWorkloadKey(db);
  const res = await post({ csr: key.csrPem, identity: formatSpiffeId(db) }, agentToken);
  assert.equal(res.status, 403);
  assert.match(res.body.message, /node node-1/);
});

test('forged, missing or non-agent tokens are 401/403', async () => {
  const key = await createWorkloadKey(web);
  const body = { csr: key.csrPem, identity: formatSpiffeId(web) };
  assert.equal((await post(body, `${agentToken.slice(0, -4)}AAAA`)).status, 401);
  assert.equal((await post(body, undefined)).status, 401);
  const core = api.kc.makeApiClient(CoreV1Api);
  const webPod = await core.readNamespacedPod({ namespace: 'shop', name: 'web-1' });
  const workloadToken = (await core.createNamespacedServiceAccountToken({ namespace: 'shop', name: 'web', body: { spec: { audiences: [CA_TOKEN_AUDIENCE], boundObjectRef: { kind: 'Pod', name: 'web-1', uid: webPod.metadata!.uid! } } } })).status!.token;
  assert.equal((await post(body, workloadToken)).status, 403, 'a workload may not mint identities');
});

test('garbage CSRs, extra SANs and CSRs for another identity than requested are 400 with the reason', async () => {
  assert.equal((await post('{"csr":', agentToken)).status, 400);
  const garbage = await post({ csr: 'garbage', identity: formatSpiffeId(web) }, agentToken);
  assert.equal(garbage.status, 400);
  assert.match(garbage.body.message, /PKCS#10/);
  const other = await createWorkloadKey({ ...web, serviceAccount: 'admin' });
  const mismatch = await post({ csr: other.csrPem, identity: formatSpiffeId(web) }, agentToken);
  assert.equal(mismatch.status, 400);
  assert.match(mismatch.body.message, /not the requested/);
});

test('a restarted CA keeps the same root from its Secret', async () => {
  const again = await loadOrCreateRoot(api.kc.makeApiClient(CoreV1Api), 'warren-system', 'cluster.local');
  assert.equal(again.certPem, root.certPem);
});

test("the CA's /metrics count what the tests above asked: one certificate issued, each refusal by reason", async () => {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ca.port, path: '/metrics', ca: root.certPem, servername: 'localhost' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    });
    req.on('error', reject);
    req.end();
  });
  const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  assert.equal(value('warren_ca_certificates_issued_total'), 1, text);
  assert.equal(value('warren_ca_requests_refused_total{reason="unauthenticated"}'), 2, 'forged and missing tokens');
  assert.equal(value('warren_ca_requests_refused_total{reason="forbidden"}'), 2, 'another node, a workload token');
  const malformed = ['bad_request', 'bad_csr'].map((r) => value(`warren_ca_requests_refused_total{reason="${r}"}`) || 0).reduce((a, b) => a + b, 0);
  assert.equal(malformed, 3, 'truncated JSON, a garbage CSR, a CSR for another identity');
});

test("a token of the API server's own audience is refused (401): only projected warren-ca tokens are accepted", async () => {
  const core = api.kc.makeApiClient(CoreV1Api);
  const agentPod = await core.readNamespacedPod({ namespace: 'warren-system', name: 'warren-node-1' });
  const bound = { kind: 'Pod' as const, name: 'warren-node-1', uid: agentPod.metadata!.uid! };
  const apiAudience = (await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [ISSUER], boundObjectRef: bound } } })).status!.token;
  const key = await createWorkloadKey(web);
  const res = await post({ csr: key.csrPem, identity: formatSpiffeId(web) }, apiAudience);
  assert.equal(res.status, 401);
  assert.match(res.body.message, /not for audience warren-ca/);
  // A token for both audiences passes the early check; the TokenReview is for warren-ca alone.
  const both = (await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [ISSUER, CA_TOKEN_AUDIENCE], boundObjectRef: bound } } })).status!.token;
  assert.equal((await post({ csr: key.csrPem, identity: formatSpiffeId(web) }, both)).status, 200);
});

describe('with its API server unreachable', () => {
  let lonely: RunningCaServer;
  before(async () => {
    // Any API call this CA makes fails: what it answers without one is refused early.
    const dead = new KubeConfig();
    dead.loadFromString(kubeconfig('https://127.0.0.1:1', api.server.caCertPem, api.server.adminToken));
    lonely = await startTestCa(dead, { ratePerSecond: 0.01, burst: 8, concurrent: 4 });
  });
  after(() => lonely.close());

  test('malformed and unauthenticated requests are refused before any API call (401/400, not 503)', async () => {
    const key = await createWorkloadKey(web);
    const good = { csr: key.csrPem, identity: formatSpiffeId(web) };
    assert.equal((await post(good, undefined, lonely.port)).status, 401);
    assert.equal((await post(good, 'not-a-jwt', lonely.port)).status, 401);
    assert.equal((await post('{"csr":', agentToken, lonely.port)).status, 400);
    assert.equal((await post({ ...good, csr: 'garbage' }, agentToken, lonely.port)).status, 400);
    assert.equal((await post({ ...good, identity: 'spiffe://cluster.local/ns/shop/sa/db' }, agentToken, lonely.port)).status, 400, 'CSR for another identity');
  });

  test('an internal failure answers 503 with a fixed text: no error detail, address or stack reaches the caller', async () => {
    const key = await createWorkloadKey(web);
    const res = await post({ csr: key.csrPem, identity: formatSpiffeId(web) }, agentToken, lonely.port);
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { message: 'the CA could not decide; try again later (details are in the CA log)' });
  });

  test('a caller over its rate gets 429 with Retry-After, before its token or body is looked at', async () => {
    let status = 0;
    let answer: Awaited<ReturnType<typeof post>> | undefined;
    // Six requests were made above; the burst of 8 runs out within a few more.
    for (let i = 0; i < 8 && status !== 429; i++) {
      answer = await post('{}', undefined, lonely.port);
      status = answer.status;
    }
    assert.equal(status, 429);
    assert.ok(Number(answer!.retryAfter) >= 1, 'Retry-After tells the agent when to come back');
    // Another caller (another source address) is not limited by this one.
    assert.equal((await post('{}', undefined, lonely.port, '127.0.0.2')).status, 401);
  });
});
