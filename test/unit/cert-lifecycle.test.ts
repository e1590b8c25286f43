import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { TokenIssuer } from '../../src/sim/apiserver/tokens.js';
import { CA_TOKEN_AUDIENCE, CaRequestError, createCaClient } from '../../src/identity/ca-client.js';
import { CertManager, type WorkloadCertificate } from '../../src/identity/cert-manager.js';
import { startCaServer, type RunningCaServer } from '../../src/ca/server.js';
import { loadCa, signServingCert, type LoadedCa } from '../../src/ca/signer.js';
import { loadOrCreateRoot } from '../../src/ca/root-store.js';
import { formatSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { clientTlsOptions, serverTlsOptions, verifyTlsPeer } from '../../src/identity/tls-context.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { eventually, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

const TD = 'cluster.local';
const AGENT_SA = 'system:serviceaccount:warren-system:warren-node';
const web: SpiffeId = { trustDomain: TD, namespace: 'shop', serviceAccount: 'web' };
const db: SpiffeId = { ...web, serviceAccount: 'db' };
const api2: SpiffeId = { ...web, serviceAccount: 'api' };

let api: TestApiServer;
let ca: LoadedCa;
let bundle: TrustBundle;
let dir: string;
let tokenFile: string;
let agentToken: string;
const running: RunningCaServer[] = [];
const managers: CertManager[] = [];

async function startCa(certTtlMs: number, port = 0): Promise<RunningCaServer> {
  const server = await startCaServer({
    kc: api.kc,
    ca,
    trustDomain: TD,
    certTtlMs,
    allowedCallers: [AGENT_SA],
    host: '127.0.0.1',
    port,
    serving: await signServingCert(ca, ['localhost'], ['127.0.0.1'], 3_600_000),
    log: () => {},
  });
  running.push(server);
  return server;
}

function manager(caPort: number, file = tokenFile): CertManager {
  const m = new CertManager({ ca: createCaClient({ address: `https://127.0.0.1:${caPort}`, tokenFile: file, bundle, timeoutMs: 2000 }), bundle, trustDomain: TD, log: () => {} });
  managers.push(m);
  return m;
}

before(async () => {
  api = await startTestApiServer();
  dir = await mkdtemp(`${tmpdir()}/warren-certs-`);
  const core = api.kc.makeApiClient(CoreV1Api);
  for (const name of ['warren-system', 'shop']) await core.createNamespace({ body: { metadata: { name } } });
  for (const name of ['node-1', 'node-2']) await core.createNode({ body: { metadata: { name } } });
  for (const [ns, sa] of [['warren-system', 'warren-node'], ['shop', 'web'], ['shop', 'db'], ['shop', 'api']] as const) await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  const pod = (ns: string, name: string, node: string, sa: string) =>
    core.createNamespacedPod({ namespace: ns, body: { metadata: { name }, spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'c', image: 'sleep' }] } } });
  const agentPod = await pod('warren-system', 'warren-node-1', 'node-1', 'warren-node');
  for (const [name, sa] of [['web-1', 'web'], ['web-2', 'web'], ['api-1', 'api']]) await pod('shop', name!, 'node-1', sa!);
  await pod('shop', 'db-1', 'node-2', 'db');
  const tr = await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [CA_TOKEN_AUDIENCE], boundObjectRef: { kind: 'Pod', name: 'warren-node-1', uid: agentPod.metadata!.uid! } } } });
  agentToken = tr.status!.token!;
  tokenFile = `${dir}/token`;
  await writeFile(tokenFile, agentToken, { mode: 0o600 });
  const root = await loadOrCreateRoot(core, 'warren-system', TD);
  ca = await loadCa(root);
  bundle = new TrustBundle(root.certPem);
});

after(async () => {
  for (const m of managers) m.stop();
  for (const s of running) await s.close();
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

/** One mutual-TLS exchange on loopback with `cert` on both ends: what serving on a certificate means. */
async function mtlsRoundTrip(cert: WorkloadCertificate): Promise<string> {
  const server = createServer(serverTlsOptions(cert, bundle), (s: TLSSocket) => {
    const peer = verifyTlsPeer(s, bundle, { trustDomain: TD, expected: [] });
    s.end(formatSpiffeId(peer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise<string>((resolve, reject) => {
      const c = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...clientTlsOptions(cert, bundle, { trustDomain: TD, expected: [cert.identity] }) });
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString()));
      c.on('end', () => resolve(text));
      c.on('error', reject);
    });
  } finally {
    server.close();
  }
}

describe('the node agent certificate manager against a real CA and API server', { concurrency: true }, () => {
  test('node-1 gets one certificate per identity, shared by its pods, dropped with the last pod', async () => {
    const ca1 = await startCa(3_600_000);
    const m = manager(ca1.port);
    const a = await m.acquire('uid-web-1', web);
    const b = await m.acquire('uid-web-2', web);
    assert.equal(a.serial, b.serial, 'the second pod of the identity shares the certificate');
    assert.equal(await mtlsRoundTrip(a), formatSpiffeId(web));
    const [row] = m.status();
    assert.equal(row?.identity, formatSpiffeId(web));
    assert.equal(row?.pods, 2);
    assert.equal(row?.state, 'valid');
    assert.equal(row?.chain.length, 2);
    assert.ok(!JSON.stringify(m.status()).includes('PRIVATE KEY'), 'the status never carries the key');
    m.release('uid-web-1');
    assert.ok(m.current(web), 'kept while a pod still uses it');
    m.release('uid-web-2');
    assert.equal(m.current(web), undefined);
    assert.deepEqual(m.status(), []);
  });

  test('an identity whose pods run only on node-2 is refused (403) and nothing is kept', async () => {
    const ca1 = await startCa(3_600_000);
    const m = manager(ca1.port);
    await assert.rejects(m.acquire('uid-db-1', db), (e: unknown) => e instanceof CaRequestError && e.status === 403 && /node-1/.test(e.message));
    assert.deepEqual(m.status(), []);
  });

  test('forged and expired tokens are 401', async () => {
    const ca1 = await startCa(3_600_000);
    const forged = `${dir}/forged`;
    await writeFile(forged, `${agentToken.slice(0, -4)}AAAA`);
    await assert.rejects(manager(ca1.port, forged).acquire('uid-web-1', web), (e: unknown) => e instanceof CaRequestError && e.status === 401);
    // Same claims, signed with the API server's real key, but expired an hour ago.
    const issuer = new TokenIssuer(Buffer.from(await readFile(`${api.dir}/sa-signing.key`, 'utf8'), 'base64'));
    const claims = JSON.parse(Buffer.from(agentToken.split('.')[1]!, 'base64url').toString());
    const expired = `${dir}/expired`;
    await writeFile(expired, issuer.issue({ ...claims, exp: Math.floor(Date.now() / 1000) - 3600 }));
    await assert.rejects(manager(ca1.port, expired).acquire('uid-web-1', web), (e: unknown) => e instanceof CaRequestError && e.status === 401);
  });

  test('with --cert-ttl 20s the certificate is renewed at about half-life, before it expires', async () => {
    const ca20 = await startCa(20_000);
    const m = manager(ca20.port);
    const first = await m.acquire('uid-web-1', web);
    await eventually(() => m.current(web)?.serial !== first.serial, 'a renewed certificate', 15_000);
    const second = m.current(web)!;
    assert.ok(Date.now() < first.notAfter.getTime(), 'renewed before the old one expired');
    assert.ok(second.notAfter > first.notAfter);
    assert.equal(m.status()[0]?.renewals, 1);
    assert.equal(await mtlsRoundTrip(second), formatSpiffeId(web));
    m.release('uid-web-1');
  });

  test('with the CA stopped the agent keeps serving on its valid certificate and recovers when the CA returns', async () => {
    const ca20 = await startCa(20_000);
    const port = ca20.port;
    const m = manager(port);
    const first = await m.acquire('uid-api-1', api2);
    await ca20.close();
    await eventually(() => m.status()[0]?.lastError !== undefined, 'a failed renewal', 15_000);
    assert.equal(m.current(api2)?.serial, first.serial, 'the valid certificate is kept');
    assert.equal(await mtlsRoundTrip(m.current(api2)!), formatSpiffeId(api2));
    await startCa(20_000, port);
    await eventually(() => m.current(api2)?.serial !== first.serial, 'renewal after the CA returned', 10_000);
    assert.ok(Date.now() < first.notAfter.getTime(), 'recovered before the old certificate expired');
    assert.equal(m.status()[0]?.lastError, undefined);
    m.release('uid-api-1');
  });
});
