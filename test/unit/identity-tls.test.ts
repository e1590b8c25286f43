import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { eventually } from '../helpers/apiserver.js';
import { after, before, test } from 'node:test';
import { connect, createServer, type ConnectionOptions, type TLSSocket, type TlsOptions } from 'node:tls';
import { createRootCa, loadCa, signWorkloadCert, type CaMaterial, type LoadedCa } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import { checkCsr, createWorkloadKey } from '../../src/identity/csr.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { clientTlsOptions, serverTlsOptions, verifyTlsPeer } from '../../src/identity/tls-context.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';

const TD = 'cluster.local';
const web: SpiffeId = { trustDomain: TD, namespace: 'shop', serviceAccount: 'web' };
const db: SpiffeId = { ...web, serviceAccount: 'db' };
const T = { timeout: 15_000 };
const PAYLOAD = 'GET /secret HTTP/1.1\r\n\r\n';

let root: CaMaterial;
let ca: LoadedCa;
let otherCa: LoadedCa;
let foreignRoot: CaMaterial;
let foreignCa: LoadedCa;

before(async () => {
  root = await createRootCa(TD);
  ca = await loadCa(root);
  otherCa = await loadCa(await createRootCa(TD));
  foreignRoot = await createRootCa('other.example');
  foreignCa = await loadCa(foreignRoot);
});

/** What the agent's CertManager would hold for `id` after the CA signed its CSR. */
async function workloadCert(signer: LoadedCa, id: SpiffeId): Promise<WorkloadCertificate> {
  const key = await createWorkloadKey(id);
  const leaf = await signWorkloadCert(signer, await checkCsr(key.csrPem, id), 3_600_000);
  const x = new X509Certificate(leaf);
  return { identity: id, privateKeyPem: key.privateKeyPem, chainPem: [leaf, ...signer.chainPem], serial: x.serialNumber, notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo), receivedAt: new Date() };
}

interface EchoServer {
  port: number;
  /** client identities verifyTlsPeer returned, one per completed handshake */
  peers: SpiffeId[];
  peerErrors: Error[];
  /** application bytes received, from any connection */
  received: string[];
  handshakeErrors: Error[];
  /** connections the server has seen end (closed after a handshake, or failed in it): nothing more can arrive on them */
  ended: number;
  close(): Promise<void>;
}

const servers: EchoServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** A TLS echo server that verifies its client's identity after the handshake, as HBONE's inbound side does. */
async function echoServer(options: TlsOptions, bundle: TrustBundle): Promise<EchoServer> {
  const sockets = new Set<TLSSocket>();
  const server = createServer(options, (socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      s.ended++;
    });
    socket.on('error', () => {});
    try {
      s.peers.push(verifyTlsPeer(socket, bundle, { trustDomain: TD, expected: [] }));
    } catch (err) {
      s.peerErrors.push(err as Error);
    }
    socket.on('data', (d: Buffer) => {
      s.received.push(d.toString());
      socket.write(d);
    });
  });
  server.on('tlsClientError', (err) => {
    s.handshakeErrors.push(err);
    s.ended++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let closed: Promise<void> | undefined;
  const s: EchoServer = {
    port: (server.address() as AddressInfo).port,
    peers: [],
    peerErrors: [],
    received: [],
    handshakeErrors: [],
    ended: 0,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      })),
  };
  servers.push(s);
  return s;
}

type Attempt =
  | { ok: true; protocol: string | null; alpn: string | false | null; echoed: string; serverId: SpiffeId; secureConnected: boolean }
  | { ok: false; error: Error; secureConnected: boolean };

/**
 * Connects and writes PAYLOAD at once (before the handshake completes: an
 * eager client must not leak it to an unverified server); resolves with the
 * echo, or with the first error. Bounded; the socket is always destroyed.
 */
function attempt(port: number, options: ConnectionOptions, clientBundle: TrustBundle, expected: readonly SpiffeId[]): Promise<Attempt> {
  return new Promise((resolve) => {
    const socket = connect({ ...options, host: '127.0.0.1', port });
    let secureConnected = false;
    let echoed = '';
    const done = (a: Attempt): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => done({ ok: false, error: new Error('timed out'), secureConnected }), 5000);
    socket.on('secureConnect', () => {
      secureConnected = true;
    });
    socket.on('data', (d: Buffer) => {
      echoed += d.toString();
      if (echoed.length < PAYLOAD.length) return;
      try {
        const serverId = verifyTlsPeer(socket, clientBundle, { trustDomain: TD, expected });
        done({ ok: true, protocol: socket.getProtocol(), alpn: socket.alpnProtocol, echoed, serverId, secureConnected });
      } catch (error) {
        done({ ok: false, error: error as Error, secureConnected });
      }
    });
    socket.on('error', (error) => done({ ok: false, error, secureConnected }));
    socket.on('close', () => done({ ok: false, error: new Error('closed without an echo'), secureConnected }));
    socket.write(PAYLOAD);
  });
}

/** Waits until the server has seen the refused connection end: then it has received all it ever will. */
const settle = (server: EchoServer): Promise<void> => eventually(() => server.ended >= 1, 'the server to see the connection end', 5000);

test('mutual TLS between two workloads of one CA: TLS 1.3, ALPN h2, data flows, each side learns the other identity', T, async () => {
  const bundle = new TrustBundle(root.certPem);
  const server = await echoServer(serverTlsOptions(await workloadCert(ca, db), bundle), bundle);
  const res = await attempt(server.port, clientTlsOptions(await workloadCert(ca, web), bundle, { trustDomain: TD, expected: [db] }), bundle, [db]);
  assert.ok(res.ok, res.ok ? '' : `the connection failed: ${res.error.message}`);
  assert.equal(res.protocol, 'TLSv1.3');
  assert.equal(res.alpn, 'h2');
  assert.equal(res.echoed, PAYLOAD);
  assert.deepEqual(res.serverId, db, 'the client sees the server identity');
  assert.deepEqual(server.peers, [web], "the server's verifyTlsPeer returns the client identity");
  assert.deepEqual(server.peerErrors, []);
  assert.deepEqual(server.received, [PAYLOAD]);
});

test('the client refuses a server with the expected SPIFFE ID from another CA, and sends it nothing', T, async () => {
  const clientBundle = new TrustBundle(root.certPem);
  const impostorBundle = new TrustBundle(root.certPem);
  const server = await echoServer(serverTlsOptions(await workloadCert(otherCa, db), impostorBundle), impostorBundle);
  const res = await attempt(server.port, clientTlsOptions(await workloadCert(ca, web), clientBundle, { trustDomain: TD, expected: [db] }), clientBundle, [db]);
  assert.equal(res.ok, false, 'the connection must fail');
  assert.equal(res.secureConnected, false);
  await settle(server);
  assert.deepEqual(server.received, [], 'the impostor never receives application data');
  assert.deepEqual(server.peers, []);
});

test('the client refuses a server of another trust domain even when the bundle holds that domain root', T, async () => {
  const bundle = new TrustBundle(root.certPem + '\n' + foreignRoot.certPem);
  assert.equal(bundle.pems().length, 2);
  const server = await echoServer(serverTlsOptions(await workloadCert(foreignCa, { ...db, trustDomain: 'other.example' }), bundle), bundle);
  const res = await attempt(server.port, clientTlsOptions(await workloadCert(ca, web), bundle, { trustDomain: TD, expected: [] }), bundle, []);
  assert.equal(res.ok, false, 'the connection must fail');
  if (!res.ok) {
    assert.equal((res.error as { code?: string }).code, 'ERR_PEER_IDENTITY');
    assert.match(res.error.message, /trust domain other\.example, not cluster\.local/);
  }
  assert.equal(res.secureConnected, false);
  await settle(server);
  assert.deepEqual(server.received, []);
});

test('the client refuses a server of its trust domain whose identity is not expected', T, async () => {
  const bundle = new TrustBundle(root.certPem);
  const server = await echoServer(serverTlsOptions(await workloadCert(ca, { ...db, serviceAccount: 'admin' }), bundle), bundle);
  const res = await attempt(server.port, clientTlsOptions(await workloadCert(ca, web), bundle, { trustDomain: TD, expected: [db] }), bundle, [db]);
  assert.equal(res.ok, false, 'the connection must fail');
  if (!res.ok) {
    assert.equal((res.error as { code?: string }).code, 'ERR_PEER_IDENTITY');
    assert.match(res.error.message, /sa\/admin, expected spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db/);
  }
  await settle(server);
  assert.deepEqual(server.received, []);
});

test('the server refuses the handshake of a client whose certificate comes from another CA', T, async () => {
  const bundle = new TrustBundle(root.certPem);
  const server = await echoServer(serverTlsOptions(await workloadCert(ca, db), bundle), bundle);
  const res = await attempt(server.port, clientTlsOptions(await workloadCert(otherCa, web), bundle, { trustDomain: TD, expected: [db] }), bundle, [db]);
  assert.equal(res.ok, false, 'the connection must fail');
  await settle(server);
  assert.ok(server.handshakeErrors.length > 0, 'the server reports a failed handshake');
  assert.deepEqual(server.peers, [], 'no connection is accepted');
  assert.deepEqual(server.peerErrors, []);
  assert.deepEqual(server.received, []);
});

test('a TLS 1.2-only client cannot connect', T, async () => {
  const bundle = new TrustBundle(root.certPem);
  const server = await echoServer(serverTlsOptions(await workloadCert(ca, db), bundle), bundle);
  const options: ConnectionOptions = { ...clientTlsOptions(await workloadCert(ca, web), bundle, { trustDomain: TD, expected: [db] }), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' };
  const res = await attempt(server.port, options, bundle, [db]);
  assert.equal(res.ok, false, 'the connection must fail');
  assert.equal(res.secureConnected, false);
  await settle(server);
  assert.ok(server.handshakeErrors.length > 0);
  assert.deepEqual(server.peers, []);
  assert.deepEqual(server.received, []);
});
