import assert from 'node:assert/strict';
import net from 'node:net';
import { createRootCa, type CaMaterial } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import type { HboneGuard } from '../../src/tunnel/hbone-limits.js';
import type { HbonePool } from '../../src/tunnel/hbone-pool.js';
import { eventually } from './apiserver.js';
import { issueWorkloadCert } from './workload-certs.js';

// What the HBONE-bounds tests of both data paths share (test/netns/hbone-bounds.test.ts,
// test/netns/native-hbone-bounds.test.ts): one CA, a server and a client certificate,
// raw peers, and a round trip through a real HBONE client.

export const TD = 'cluster.local';
export const serverId: SpiffeId = { trustDomain: TD, namespace: 'shop', serviceAccount: 'server' };
export const clientId: SpiffeId = { trustDomain: TD, namespace: 'shop', serviceAccount: 'client' };

export interface BoundsCerts {
  root: CaMaterial;
  bundle: TrustBundle;
  serverCert: WorkloadCertificate;
  clientCert: WorkloadCertificate;
}

let made: Promise<BoundsCerts> | undefined;

/** The file's CA and certificates, made once. */
export function boundsCerts(): Promise<BoundsCerts> {
  return (made ??= (async () => {
    const root = await createRootCa(TD);
    return { root, bundle: new TrustBundle(root.certPem), serverCert: await issueWorkloadCert(root, serverId), clientCert: await issueWorkloadCert(root, clientId) };
  })());
}

export async function tcpServer(onSocket: (s: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => s.destroy());
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** A raw TCP connection to the HBONE port from `localAddress` (no TLS yet). */
export function rawConnection(port: number, localAddress: string): net.Socket {
  return net.connect({ port, host: '127.0.0.1', localAddress });
}

/** A raw connection the agent has accepted and counted. */
export async function admitted(port: number, guard: HboneGuard, localAddress: string): Promise<net.Socket> {
  const before = guard.connections();
  const s = rawConnection(port, localAddress);
  s.on('error', () => {});
  await eventually(() => guard.connections() === before + 1, `the connection from ${localAddress} is accepted`, 2000);
  return s;
}

/** How `s` ended within `withinMs`: an error code, 'closed', or 'open'. */
export const closedWith = (s: net.Socket, withinMs: number): Promise<string> =>
  new Promise((resolve) => {
    let outcome = 'closed';
    const timer = setTimeout(() => resolve('open'), withinMs);
    s.on('error', (err: NodeJS.ErrnoException) => (outcome = err.code ?? err.message));
    s.once('close', () => {
      clearTimeout(timer);
      resolve(outcome);
    });
  });

/** 'hi' through `pool` to the server identity's echo app and back; closes the pool. */
export async function echoThrough(pool: HbonePool): Promise<void> {
  const echo = await tcpServer((s) => s.pipe(s));
  try {
    const stream = await pool.open('127.0.0.1', serverId, { ip: '127.0.0.1', port: echo.port });
    stream.end('hi');
    const answer: Buffer[] = [];
    for await (const chunk of stream) answer.push(chunk as Buffer);
    assert.equal(Buffer.concat(answer).toString(), 'hi');
  } finally {
    pool.close();
    echo.server.close();
  }
}
