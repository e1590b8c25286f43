import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRootCa, loadCa, signWorkloadCert, type LoadedCa } from '../../src/ca/signer.js';
import { checkCsr, createWorkloadKey, toPkcs8Pem } from '../../src/identity/csr.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { verifyPeer } from '../../src/identity/verify-peer.js';
import { EC_P256, webcrypto, x509 } from '../../src/identity/x509-provider.js';
import { WarrenError } from '../../src/errors/warren-error.js';

const shop: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };
const code = (c: string, why?: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === c && (why === undefined || why.test(err.message));

async function issue(ca: LoadedCa, id: SpiffeId, ttlMs = 3_600_000, now = new Date()): Promise<string> {
  const key = await createWorkloadKey(id);
  return signWorkloadCert(ca, await checkCsr(key.csrPem, id), ttlMs, now);
}

test('SPIFFE IDs: one spelling per workload; anything else is refused with the reason', () => {
  assert.deepEqual(parseSpiffeId('spiffe://cluster.local/ns/shop/sa/web'), shop);
  assert.equal(formatSpiffeId(shop), 'spiffe://cluster.local/ns/shop/sa/web');
  for (const bad of ['https://cluster.local/ns/a/sa/b', 'spiffe://cluster.local/ns/a', 'spiffe://Cluster.local/ns/a/sa/b', 'spiffe:///ns/a/sa/b', 'spiffe://td/ns/a/sa/b/extra', 'spiffe://td/ns//sa/b', 'spiffe://td/ns/A/sa/b']) {
    assert.throws(() => parseSpiffeId(bad), code('ERR_SPIFFE_ID'), bad);
  }
});

test('CSRs: the agent asks for exactly its SPIFFE ID; the CA refuses garbage, extra SANs, other identities, other key types', async () => {
  const key = await createWorkloadKey(shop);
  assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  assert.deepEqual((await checkCsr(key.csrPem, shop)).identity, shop);
  await assert.rejects(checkCsr('not a csr', shop), code('ERR_BAD_CSR', /does not parse/));
  await assert.rejects(checkCsr(key.csrPem, { ...shop, serviceAccount: 'admin' }), code('ERR_BAD_CSR', /not the requested/));
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const extra = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(shop) }, { type: 'dns', value: 'web.shop.svc' }])],
  });
  await assert.rejects(checkCsr(extra.toString('pem'), shop), code('ERR_BAD_CSR', /exactly one URI SAN/));
  const named = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=admin', keys, signingAlgorithm: EC_P256, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(shop) }])] });
  await assert.rejects(checkCsr(named.toString('pem'), shop), code('ERR_BAD_CSR', /subject/));
  const rsaAlg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const rsaKeys = await webcrypto.subtle.generateKey(rsaAlg, true, ['sign', 'verify']);
  const rsa = await x509.Pkcs10CertificateRequestGenerator.create({ keys: rsaKeys, signingAlgorithm: rsaAlg, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: formatSpiffeId(shop) }])] });
  await assert.rejects(checkCsr(rsa.toString('pem'), shop), code('ERR_BAD_CSR', /ECDSA P-256/));
  assert.ok((await toPkcs8Pem(keys.privateKey)).includes('PRIVATE KEY'));
  // A curve OID damaged in transit (found by the reliability tier's hostile inputs): WebCrypto
  // throws a TypeError on import, which the CA answered as its own failure (503), not a bad CSR.
  const der = Buffer.from(key.csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const p256 = Buffer.from('06082a8648ce3d030107', 'hex');
  der[der.indexOf(p256) + p256.length - 1] = 0x08;
  await assert.rejects(checkCsr(`-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----`, shop), code('ERR_BAD_CSR', /public key cannot be used/));
});

test('issued certificates verify against the bundle as the expected identity; other CAs, trust domains and windows do not', async () => {
  const root = await createRootCa('cluster.local');
  const ca = await loadCa(root);
  const leaf = await issue(ca, shop);
  const expectation = { trustDomain: 'cluster.local', expected: [shop] };
  assert.deepEqual(verifyPeer([leaf], [root.certPem], expectation), shop);
  assert.deepEqual(verifyPeer([leaf], [root.certPem], { trustDomain: 'cluster.local', expected: [] }), shop, 'any identity of the domain');
  assert.throws(() => verifyPeer([leaf], [root.certPem], { ...expectation, expected: [{ ...shop, serviceAccount: 'db' }] }), code('ERR_PEER_IDENTITY', /expected/));

  const impostorCa = await loadCa(await createRootCa('cluster.local'));
  const impostor = await issue(impostorCa, shop);
  assert.throws(() => verifyPeer([impostor], [root.certPem], expectation), code('ERR_PEER_IDENTITY', /trust bundle/), 'same SPIFFE ID from another CA');

  const foreign = await issue(ca, { ...shop, trustDomain: 'other.example' });
  assert.throws(() => verifyPeer([foreign], [root.certPem], expectation), code('ERR_PEER_IDENTITY', /trust domain other\.example/));

  const past = new Date(Date.now() - 3 * 3_600_000);
  const expired = await issue(ca, shop, 3_600_000, past);
  assert.throws(() => verifyPeer([expired], [root.certPem], expectation), code('ERR_PEER_IDENTITY', /expired/));
  assert.throws(() => verifyPeer([leaf], [root.certPem], { ...expectation, now: new Date(Date.now() - 3_600_000) }), code('ERR_PEER_IDENTITY', /not valid before/));
  assert.throws(() => verifyPeer([root.certPem], [root.certPem], expectation), code('ERR_PEER_IDENTITY', /CA certificate/));
  assert.throws(() => verifyPeer([], [root.certPem], expectation), code('ERR_PEER_IDENTITY', /no certificate/));
});

test('workload certificates: short-lived, no subject, client+server auth, never past the CA', async () => {
  const root = await createRootCa('cluster.local', 1);
  const ca = await loadCa(root);
  const cert = new x509.X509Certificate(await issue(ca, shop, 10 * 86_400_000));
  assert.equal(cert.subject, '');
  assert.ok(cert.notAfter.getTime() <= ca.cert.notAfter.getTime(), 'capped at the CA expiry');
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  assert.equal(basic?.ca, false);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...(eku?.usages ?? [])].sort(), [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth].sort());
});
