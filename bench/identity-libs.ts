/**
 * The workload-identity library choice, measured: node-forge with RSA-2048
 * against @peculiar/x509 (WebCrypto) with ECDSA P-256, for key generation,
 * CSR, CA signing, chain verification, and mutual TLS 1.3 handshakes with
 * each chain on loopback. The ECDSA side is warren's own src/identity (so the
 * numbers are those of the code that ships, CSR checks included); the forge
 * side issues the same workload certificate (no subject, the SPIFFE URI as
 * the only critical SAN, digitalSignature, server + client auth).
 */
import { X509Certificate as NodeX509, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import forge from 'node-forge';
import { createRootCa, loadCa, signWorkloadCert, type LoadedCa } from '../src/ca/signer.js';
import { checkCsr, createCsr, generateWorkloadKeys, toPkcs8Pem } from '../src/identity/csr.js';
import { parseSpiffeId } from '../src/identity/spiffe.js';
import { x509 } from '../src/identity/x509-provider.js';

const SPIFFE_ID = 'spiffe://cluster.local/ns/bench/sa/bench';
/** the identities the handshake rig expects on each side (bench/ca-issue.ts issues these from a real CA) */
export const SERVER_ID = 'spiffe://cluster.local/ns/bench/sa/server';
export const CLIENT_ID = 'spiffe://cluster.local/ns/bench/sa/client';
const TTL_MS = 24 * 3600 * 1000;
const SKEW_MS = 60_000;

/** Fixed iteration counts (plus a few untimed warm-up rounds each). */
export const N = { forgeJsKeygen: 5, keygen: 50, csr: 200, sign: 200, verify: 200, warmup: 5, handshakeSeconds: 3, handshakeRounds: 6, handshakeWarmup: 20 };

export interface Stats {
  n: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

export interface HandshakeStats {
  handshakes: number;
  seconds: number;
  perSecond: number;
  /** process CPU (user + system) per handshake: client and server sides together */
  cpuMsPerHandshake: number;
  p50Ms: number;
  p99Ms: number;
}

export interface IdentityLibsResult {
  keygen: { nodeRsa: Stats; nodeEc: Stats; forgeRsa: Stats; webcryptoEc: Stats; forgeJsRsa: Stats };
  csr: { forgeRsa: Stats; x509Ec: Stats };
  issue: { forgeRsa: Stats; x509Ec: Stats };
  verify: { forgeRsa: Stats; x509Ec: Stats };
  nodeVerify: { rsa: Stats; ec: Stats };
  leafDerBytes: { rsa: number; ec: number };
  tls: { rsa: HandshakeStats; ec: HandshakeStats };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function stats(times: number[]): Stats {
  const sorted = [...times].sort((a, b) => a - b);
  return { n: times.length, meanMs: times.reduce((a, b) => a + b, 0) / times.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}

/** Times `n` sequential calls (after `warmup` untimed ones); `fn` gets the iteration index. */
async function measure(n: number, fn: (i: number) => unknown, warmup = N.warmup): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    times.push(performance.now() - t0);
  }
  return stats(times);
}

const serialHex = (): string => '01' + randomBytes(15).toString('hex'); // positive, 16 bytes
const derOfPem = (text: string): Buffer => Buffer.from(text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

/** What node:tls needs for one side of a mutual handshake. */
export interface TlsMaterial {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

// ---------------------------------------------------------------- node-forge, RSA-2048

type ForgeKeys = forge.pki.rsa.KeyPair;

/** RSA keys the way a forge-based CA would make them: node:crypto, then parsed into forge. */
function forgeKeysViaNode(): ForgeKeys {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

const forgePkcs8Pem = (key: forge.pki.rsa.PrivateKey): string => forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key)));

export interface ForgeCa {
  cert: forge.pki.Certificate;
  certPem: string;
  key: forge.pki.rsa.PrivateKey;
  keyId: string;
  store: forge.pki.CAStore;
}

export function forgeCa(): ForgeCa {
  const keys = forgeKeysViaNode();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialHex();
  cert.validity.notBefore = new Date(Date.now() - SKEW_MS);
  cert.validity.notAfter = new Date(Date.now() + 3650 * 86_400_000);
  const name = [{ name: 'organizationName', value: 'warren' }, { name: 'commonName', value: 'bench root CA (RSA-2048)' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const keyId = forge.pki.getPublicKeyFingerprint(keys.publicKey, { type: 'RSAPublicKey', encoding: 'hex' });
  const certPem = forge.pki.certificateToPem(cert);
  return { cert, certPem, key: keys.privateKey, keyId, store: forge.pki.createCaStore([certPem]) };
}

function forgeCsr(keys: ForgeKeys, spiffeId: string): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] }]);
  csr.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** The CA's side: parse and check the CSR, take its URI SAN, issue and sign the workload certificate. */
function forgeIssue(ca: ForgeCa, csrPem: string): string {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  if (!csr.verify()) throw new Error('forge: CSR signature does not verify');
  const req = csr.getAttribute({ name: 'extensionRequest' }) as { extensions?: { name: string; altNames?: { type: number; value: string }[] }[] } | null;
  const uri = req?.extensions?.find((e) => e.name === 'subjectAltName')?.altNames?.find((n) => n.type === 6)?.value;
  if (uri === undefined || !uri.startsWith('spiffe://')) throw new Error('forge: CSR has no SPIFFE URI SAN');
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey!;
  cert.serialNumber = serialHex();
  cert.validity.notBefore = new Date(Date.now() - SKEW_MS);
  cert.validity.notAfter = new Date(Date.now() + TTL_MS);
  cert.setSubject([]);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: uri }], critical: true },
    { name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(ca.keyId) },
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/**
 * forge's path validation rejects every critical extension but keyUsage,
 * basicConstraints and nameConstraints, so it refuses a SPIFFE leaf (empty
 * subject, hence a critical subjectAltName, RFC 5280 §4.2.1.6). The callback
 * accepts exactly that case: forge reports it after the signature, validity
 * and issuer checks, so those have passed.
 */
const FORGE_KNOWN_CRITICAL = new Set(['keyUsage', 'basicConstraints', 'subjectAltName']);
function forgeAcceptSpiffeLeaf(verified: boolean | string, depth: number, certs: forge.pki.Certificate[]): boolean {
  if (verified === true) return true;
  const leaf = certs[0];
  return (
    depth === 0 &&
    verified === 'forge.pki.UnsupportedCertificate' && // pki.certificateError.unsupported_certificate (not in the typings)
    leaf !== undefined &&
    (leaf.extensions as { name?: string; critical?: boolean }[]).every((e) => e.critical !== true || FORGE_KNOWN_CRITICAL.has(e.name ?? ''))
  );
}

function forgeVerify(ca: ForgeCa, certPem: string): void {
  const leaf = forge.pki.certificateFromPem(certPem);
  if (!forge.pki.verifyCertificateChain(ca.store, [leaf], { verify: forgeAcceptSpiffeLeaf })) throw new Error('forge: chain does not verify');
}

/** The RSA-2048 side of the handshake comparison: server and client leaves for SERVER_ID / CLIENT_ID from `ca`. */
export function forgeTlsMaterial(ca: ForgeCa): TlsMaterial {
  const fServer = forgeKeysViaNode();
  const fClient = forgeKeysViaNode();
  return {
    caPem: ca.certPem,
    serverCertPem: forgeIssue(ca, forgeCsr(fServer, SERVER_ID)),
    serverKeyPem: forgePkcs8Pem(fServer.privateKey),
    clientCertPem: forgeIssue(ca, forgeCsr(fClient, CLIENT_ID)),
    clientKeyPem: forgePkcs8Pem(fClient.privateKey),
  };
}

// ---------------------------------------------------------------- @peculiar/x509, ECDSA P-256: warren's own src/identity

async function x509Ca(): Promise<LoadedCa & { certPem: string }> {
  const root = await createRootCa('cluster.local');
  return { ...(await loadCa(root)), certPem: root.certPem };
}

/** What the CA does per request: parse and check the CSR, then sign. */
async function x509Issue(ca: LoadedCa, csrPem: string, id: string): Promise<string> {
  const identity = parseSpiffeId(id);
  return signWorkloadCert(ca, await checkCsr(csrPem, identity), TTL_MS);
}

async function x509Verify(ca: LoadedCa, certPem: string): Promise<void> {
  const leaf = new x509.X509Certificate(certPem);
  if (!(await leaf.verify({ publicKey: ca.cert.publicKey }))) throw new Error('x509: certificate does not verify');
}

// ---------------------------------------------------------------- TLS handshakes

/** A TLS server for one chain and a client that makes one mutual handshake at a time. */
interface HandshakeRig {
  /** one new connection: connect → server verified the client → first byte; resolves with its ms */
  one(): Promise<number>;
  close(): void;
}

async function handshakeRig(m: TlsMaterial): Promise<HandshakeRig> {
  const server = tls.createServer({
    key: m.serverKeyPem,
    cert: m.serverCertPem,
    ca: [m.caPem],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ALPNProtocols: ['h2'],
  });
  server.on('secureConnection', (s) => {
    s.on('error', () => {});
    // the client certificate was verified against the CA before this event; check the identity, then answer one byte
    const ok = s.authorized && (s.getPeerCertificate().subjectaltname ?? '').includes(`URI:${CLIENT_ID}`);
    s.end(Buffer.from([ok ? 1 : 0]));
  });
  server.on('tlsClientError', (err) => console.error(`server handshake error: ${err.message}`));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  // one client context, as a real client keeps (parsing the PEM per connection would be measured otherwise)
  const clientContext = tls.createSecureContext({ ca: [m.caPem], cert: m.clientCertPem, key: m.clientKeyPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
  const one = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      // no `session` option: every connection is a full handshake
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        secureContext: clientContext,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        ALPNProtocols: ['h2'],
        // workload certificates carry a SPIFFE URI, not a host name: check that instead (the chain is still verified)
        checkServerIdentity: (_host, cert) => ((cert.subjectaltname ?? '').includes(`URI:${SERVER_ID}`) ? undefined : new Error('server is not the expected SPIFFE ID')),
      });
      s.once('error', reject);
      // the server writes only after it has verified the client certificate: this is the full mutual handshake
      s.once('data', (d: Buffer) => {
        const ms = performance.now() - t0;
        const problem =
          d[0] !== 1 ? 'server rejected the client identity'
          : s.getProtocol() !== 'TLSv1.3' ? `protocol ${s.getProtocol()}`
          : s.alpnProtocol !== 'h2' ? `ALPN ${String(s.alpnProtocol)}`
          : s.isSessionReused() ? 'session was resumed'
          : undefined;
        s.destroy();
        s.once('close', () => (problem === undefined ? resolve(ms) : reject(new Error(problem))));
      });
    });
  return { one, close: () => server.close() };
}

/**
 * Handshakes for each chain, one connection at a time, `seconds` in all per
 * chain, taken in alternating rounds (RSA, ECDSA, RSA, …) so that a noisy
 * stretch of the machine hits both chains alike.
 */
export async function handshakes(chains: { rsa: TlsMaterial; ec: TlsMaterial }, seconds: number, rounds: number, warmup: number): Promise<{ rsa: HandshakeStats; ec: HandshakeStats }> {
  const rigs = { rsa: await handshakeRig(chains.rsa), ec: await handshakeRig(chains.ec) };
  const acc = { rsa: { times: [] as number[], wallMs: 0, cpuUs: 0 }, ec: { times: [] as number[], wallMs: 0, cpuUs: 0 } };
  try {
    for (const rig of [rigs.rsa, rigs.ec]) for (let i = 0; i < warmup; i++) await rig.one();
    for (let r = 0; r < rounds; r++) {
      for (const key of ['rsa', 'ec'] as const) {
        const a = acc[key];
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const until = t0 + (seconds * 1000) / rounds;
        while (performance.now() < until) a.times.push(await rigs[key].one());
        a.wallMs += performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        a.cpuUs += cpu.user + cpu.system;
      }
    }
  } finally {
    rigs.rsa.close();
    rigs.ec.close();
  }
  const result = (a: (typeof acc)['rsa']): HandshakeStats => {
    const s = stats(a.times);
    return {
      handshakes: a.times.length,
      seconds: a.wallMs / 1000,
      perSecond: a.times.length / (a.wallMs / 1000),
      cpuMsPerHandshake: a.cpuUs / 1000 / a.times.length,
      p50Ms: s.p50Ms,
      p99Ms: s.p99Ms,
    };
  };
  return { rsa: result(acc.rsa), ec: result(acc.ec) };
}

// ---------------------------------------------------------------- the benchmark

let started = 0;
const log = (msg: string): void => console.log(`  [${((performance.now() - started) / 1000).toFixed(1)} s] ${msg}`);

export async function benchIdentityLibs(): Promise<IdentityLibsResult> {
  started = performance.now();
  const forgeOptions = (forge as unknown as { options: { usePureJavaScript: boolean } }).options;

  log('key generation');
  const keygen = {
    nodeRsa: await measure(N.keygen, () => generateKeyPairSync('rsa', { modulusLength: 2048 })),
    nodeEc: await measure(N.keygen, () => generateKeyPairSync('ec', { namedCurve: 'P-256' })),
    // forge's synchronous generateKeyPair hands off to node:crypto when it can, then parses the PEM into forge keys
    forgeRsa: await measure(N.keygen, () => forge.pki.rsa.generateKeyPair(2048)),
    webcryptoEc: await measure(N.keygen, () => generateWorkloadKeys()),
    forgeJsRsa: await (async () => {
      forgeOptions.usePureJavaScript = true;
      try {
        return await measure(N.forgeJsKeygen, () => forge.pki.rsa.generateKeyPair(2048), 0); // seconds each: no warm-up
      } finally {
        forgeOptions.usePureJavaScript = false;
      }
    })(),
  };

  log('CAs, workload keys');
  const fCa = forgeCa();
  const xCa = await x509Ca();
  const fKeys = forgeKeysViaNode();
  const xKeys = await generateWorkloadKeys();

  log(`CSR (${N.csr} each)`);
  const fCsrs: string[] = [];
  const xCsrs: string[] = [];
  const csr = {
    forgeRsa: await measure(N.csr, (i) => (fCsrs[i] = forgeCsr(fKeys, SPIFFE_ID))),
    x509Ec: await measure(N.csr, async (i) => (xCsrs[i] = await createCsr(xKeys, parseSpiffeId(SPIFFE_ID)))),
  };

  log(`CA signing (${N.sign} each)`);
  const fCerts: string[] = [];
  const xCerts: string[] = [];
  const issue = {
    forgeRsa: await measure(N.sign, (i) => (fCerts[i] = forgeIssue(fCa, fCsrs[i % fCsrs.length]!))),
    x509Ec: await measure(N.sign, async (i) => (xCerts[i] = await x509Issue(xCa, xCsrs[i % xCsrs.length]!, SPIFFE_ID))),
  };

  log(`verification (${N.verify} each)`);
  const verify = {
    forgeRsa: await measure(N.verify, (i) => forgeVerify(fCa, fCerts[i % fCerts.length]!)),
    x509Ec: await measure(N.verify, (i) => x509Verify(xCa, xCerts[i % xCerts.length]!)),
  };
  const nodeVerifyOne = (caKey: ReturnType<typeof createPublicKey>, certPem: string): void => {
    if (!new NodeX509(certPem).verify(caKey)) throw new Error('node:crypto: certificate does not verify');
  };
  const fCaKey = createPublicKey(new NodeX509(fCa.certPem).publicKey.export({ type: 'spki', format: 'pem' }));
  const xCaKey = createPublicKey(new NodeX509(xCa.certPem).publicKey.export({ type: 'spki', format: 'pem' }));
  const nodeVerify = {
    rsa: await measure(N.verify, (i) => nodeVerifyOne(fCaKey, fCerts[i % fCerts.length]!)),
    ec: await measure(N.verify, (i) => nodeVerifyOne(xCaKey, xCerts[i % xCerts.length]!)),
  };
  const leafDerBytes = { rsa: derOfPem(fCerts[0]!).length, ec: derOfPem(xCerts[0]!).length };

  log(`mTLS 1.3 handshakes (~${N.handshakeSeconds} s per chain, ${N.handshakeRounds} alternating rounds)`);
  const rsaChain = forgeTlsMaterial(fCa);
  const xServer = await generateWorkloadKeys();
  const xClient = await generateWorkloadKeys();
  const ecChain: TlsMaterial = {
    caPem: xCa.certPem,
    serverCertPem: await x509Issue(xCa, await createCsr(xServer, parseSpiffeId(SERVER_ID)), SERVER_ID),
    serverKeyPem: await toPkcs8Pem(xServer.privateKey),
    clientCertPem: await x509Issue(xCa, await createCsr(xClient, parseSpiffeId(CLIENT_ID)), CLIENT_ID),
    clientKeyPem: await toPkcs8Pem(xClient.privateKey),
  };
  const tlsResult = await handshakes({ rsa: rsaChain, ec: ecChain }, N.handshakeSeconds, N.handshakeRounds, N.handshakeWarmup);

  return { keygen, csr, issue, verify, nodeVerify, leafDerBytes, tls: tlsResult };
}
