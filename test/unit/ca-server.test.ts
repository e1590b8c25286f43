import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { ISSUER } from '../../src/sim/apiserver/tokens.js';
import { loadCa, signServingCert, type CaMaterial } from '../../src/identity/ca-signer.js';
import { startCaServer, type RunningCaServer } from '../../src/identity/ca-server.js';
import { loadOrCreateRoot } from '../../src/identity/ca-store.js';
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
  const tr = await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [ISSUER], boundObjectRef: { kind: 'Pod', name: 'warren-node-1', uid: agentPod.metadata!.uid! } } } });
  agentToken = tr.status!.token;
  root = await loadOrCreateRoot(core, 'warren-system', 'cluster.local');
  const loaded = await loadCa(root);
  ca = await startCaServer({
    kc: api.kc,
    ca: loaded,
    trustDomain: 'cluster.local',
    certTtlMs: 3_600_000,
    allowedCallers: [AGENT_SA],
    host: '127.0.0.1',
    port: 0,
    serving: await signServingCert(loaded, ['localhost'], ['127.0.0.1'], 3_600_000),
    log: () => {},
  });
});

after(async () => {
  await ca.close();
  await api.stop();
});

function post(body: unknown, token: string | undefined): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: ca.port, path: '/v1/certificates', method: 'POST', ca: root.certPem, servername: 'localhost', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
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
  const workloadToken = (await core.createNamespacedServiceAccountToken({ namespace: 'shop', name: 'web', body: { spec: { audiences: [ISSUER], boundObjectRef: { kind: 'Pod', name: 'web-1', uid: webPod.metadata!.uid! } } } })).status!.token;
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
