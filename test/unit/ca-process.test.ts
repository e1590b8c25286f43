import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { createRootCa, loadCa } from '../../src/ca/signer.js';
import { createWorkloadKey, generateWorkloadKeys, toPkcs8Pem } from '../../src/identity/csr.js';
import { parseCertificateBundle } from '../../src/identity/pem.js';
import { formatSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { verifyPeer } from '../../src/identity/verify-peer.js';
import { EC_P256, x509 } from '../../src/identity/x509-provider.js';
import { CA_TOKEN_AUDIENCE } from '../../src/identity/ca-client.js';
import { eventually, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname; // dist/src/cli/main.js, as bin/warren runs it
const web: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };
const T = { timeout: 60_000 };

const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const f of cleanups.reverse()) await f();
});

interface CaProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** `warren ca ...` with only PATH from our environment, so a developer's KUBECONFIG or WARREN_* cannot leak in. */
function warrenCa(args: string[]): CaProcess {
  const child = spawn(process.execPath, [MAIN, 'ca', ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => (children.delete(child), resolve(code))));
  return { child, output: () => out, exited };
}

async function exitOf(p: CaProcess, ms = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`warren ca did not exit within ${ms} ms:\n${p.output()}`)), ms)));
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function stop(p: CaProcess): Promise<void> {
  p.child.kill('SIGTERM');
  assert.equal(await exitOf(p), 0, `SIGTERM must end warren ca cleanly:\n${p.output()}`);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function https(port: number, rootPem: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, ca: rootPem, timeout: 5000, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Polls /healthz over HTTPS trusting only `rootPem`; fails early if the process dies. */
async function healthy(p: CaProcess, port: number, rootPem: string): Promise<void> {
  let exited = false;
  void p.exited.then(() => (exited = true));
  let last = '';
  await eventually(
    async () => {
      if (exited) throw new Error('warren ca exited before it was healthy');
      try {
        return (await https(port, rootPem, 'GET', '/healthz')).status === 200;
      } catch (err) {
        last = (err as Error).message;
        return false;
      }
    },
    'GET /healthz',
    20_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (last error: ${last})\n${p.output()}`);
  });
}

interface Cluster {
  api: TestApiServer;
  core: CoreV1Api;
  kubeconfig: string;
  dir: string;
  agentToken: string;
}

/** An API server with namespaces warren-system and shop, node-1 running the agent pod and a pod of shop/web. */
async function cluster(): Promise<Cluster> {
  const api = await startTestApiServer();
  const dir = await mkdtemp(`${tmpdir()}/warren-ca-test-`);
  cleanups.push(() => api.stop(), () => rm(dir, { recursive: true, force: true }));
  const kubeconfig = `${dir}/kubeconfig`;
  await writeFile(kubeconfig, api.kubeconfigText);
  const core = api.kc.makeApiClient(CoreV1Api);
  for (const name of ['warren-system', 'shop']) await core.createNamespace({ body: { metadata: { name } } });
  await core.createNode({ body: { metadata: { name: 'node-1' } } });
  for (const [namespace, name] of [['warren-system', 'warren-node'], ['shop', 'web']] as const) await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const pod = (namespace: string, name: string, sa: string) =>
    core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: { nodeName: 'node-1', serviceAccountName: sa, containers: [{ name: 'c', image: 'sleep' }] } } });
  const agentPod = await pod('warren-system', 'warren-node-1', 'warren-node');
  await pod('shop', 'web-1', 'web');
  const tr = await core.createNamespacedServiceAccountToken({ namespace: 'warren-system', name: 'warren-node', body: { spec: { audiences: [CA_TOKEN_AUDIENCE], boundObjectRef: { kind: 'Pod', name: 'warren-node-1', uid: agentPod.metadata!.uid! } } } });
  return { api, core, kubeconfig, dir, agentToken: tr.status!.token! };
}

const bundleIn = async (core: CoreV1Api, namespace: string): Promise<string | undefined> =>
  (await core.readNamespacedConfigMap({ namespace, name: 'warren-ca-root' }).catch(() => undefined))?.data?.['root-cert.pem'];

test('warren ca --help exits 0 and documents --cert-ttl', T, async () => {
  const p = warrenCa(['--help']);
  assert.equal(await exitOf(p), 0);
  assert.match(p.output(), /--cert-ttl/);
});

test('invalid flags exit non-zero naming the flag', T, async () => {
  const ttl = warrenCa(['--cert-ttl', '5x', '--kubeconfig', '/nonexistent']);
  assert.notEqual(await exitOf(ttl), 0);
  assert.match(ttl.output(), /--cert-ttl/);
  const half = warrenCa(['--ca-cert', '/nonexistent/ca.pem', '--kubeconfig', '/nonexistent']);
  assert.notEqual(await exitOf(half), 0);
  assert.match(half.output(), /--ca-key/);
});

test('with an intermediate from files: signs for the agent, serves the chain, publishes the root, stops on SIGTERM', T, async () => {
  const c = await cluster();
  const root = await createRootCa('cluster.local');
  const rootCa = await loadCa(root);
  const keys = await generateWorkloadKeys();
  const now = Date.now();
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: '0a1b2c',
    subject: 'O=acme, CN=acme warren intermediate',
    issuer: rootCa.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 30 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: rootCa.key,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootCa.cert),
    ],
  });
  const intermediatePem = intermediate.toString('pem');
  await writeFile(`${c.dir}/ca.pem`, `${intermediatePem}\n${root.certPem}\n`);
  await writeFile(`${c.dir}/ca.key`, await toPkcs8Pem(keys.privateKey));
  const port = await freePort();
  const p = warrenCa(['--kubeconfig', c.kubeconfig, '--ca-cert', `${c.dir}/ca.pem`, '--ca-key', `${c.dir}/ca.key`, '--listen', `127.0.0.1:${port}`, '--namespace', 'warren-system', '--cert-ttl', '1h']);
  await healthy(p, port, root.certPem);

  const key = await createWorkloadKey(web);
  const res = await https(port, root.certPem, 'POST', '/v1/certificates', { csr: key.csrPem, identity: formatSpiffeId(web) }, c.agentToken);
  assert.equal(res.status, 200, res.text);
  const chain = (JSON.parse(res.text) as { certChain: string[] }).certChain;
  const leaf = new x509.X509Certificate(chain[0]!);
  assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca ?? false, false, 'certChain[0] is the workload leaf');
  assert.equal(leaf.issuer, intermediate.subject, 'signed by the intermediate');
  const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
  assert.ok(lifetime <= 3_600_000 + 60_000 && lifetime > 3_500_000, `--cert-ttl 1h gives a one-hour certificate (got ${lifetime} ms)`);
  assert.ok(chain.slice(1).some((pem) => new x509.X509Certificate(pem).equal(intermediate)), 'the chain carries the intermediate');
  assert.deepEqual(verifyPeer(chain, [root.certPem], { trustDomain: 'cluster.local', expected: [web] }), web);

  const rootOnly = parseCertificateBundle(root.certPem, 'root');
  await eventually(async () => {
    const pem = await bundleIn(c.core, 'shop');
    return pem !== undefined && parseCertificateBundle(pem, 'bundle').join('') === rootOnly.join('');
  }, 'ConfigMap shop/warren-ca-root holding the root (not the intermediate)', 15_000);
  await stop(p);
});

test('default mode: the root is kept in Secret warren-ca, and a restarted CA publishes the same bundle', T, async () => {
  const c = await cluster();
  const port = await freePort();
  const args = ['--kubeconfig', c.kubeconfig, '--listen', `127.0.0.1:${port}`, '--namespace', 'warren-system'];
  const first = warrenCa(args);
  let rootPem = '';
  await eventually(async () => {
    const s = await c.core.readNamespacedSecret({ namespace: 'warren-system', name: 'warren-ca' }).catch(() => undefined);
    rootPem = Buffer.from(s?.data?.['ca.crt'] ?? '', 'base64').toString();
    return rootPem !== '';
  }, 'Secret warren-system/warren-ca', 20_000);
  await healthy(first, port, rootPem);
  let published = '';
  await eventually(async () => ((published = (await bundleIn(c.core, 'shop')) ?? '') !== ''), 'ConfigMap shop/warren-ca-root', 15_000);
  assert.deepEqual(parseCertificateBundle(published, 'bundle'), parseCertificateBundle(rootPem, 'secret'), 'the bundle is the Secret root');
  await stop(first);

  const second = warrenCa(args);
  await healthy(second, port, rootPem); // its serving certificate still chains to the first root
  await c.core.createNamespace({ body: { metadata: { name: 'late' } } });
  await eventually(async () => (await bundleIn(c.core, 'late')) !== undefined, 'ConfigMap late/warren-ca-root', 15_000);
  assert.equal(await bundleIn(c.core, 'late'), published, 'a namespace created after the restart gets the same bundle');
  assert.equal(await bundleIn(c.core, 'shop'), published, 'the bundle is unchanged');
  const secret = await c.core.readNamespacedSecret({ namespace: 'warren-system', name: 'warren-ca' });
  assert.equal(Buffer.from(secret.data!['ca.crt']!, 'base64').toString(), rootPem, 'the Secret keeps the first root');
  await stop(second);
});
