import assert from 'node:assert/strict';
import { connect as http2Connect, constants } from 'node:http2';
import net from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootCa, type CaMaterial } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { clientTlsOptions } from '../../src/identity/tls-context.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import type { HboneGuard, HboneLimits, HboneRefusal } from '../../src/tunnel/hbone-limits.js';
import type { HbonePool } from '../../src/tunnel/hbone-pool.js';
import { eventually } from './apiserver.js';
import { createTopology, inNetns } from './netns.js';
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

/** One HTTP/2 frame (RFC 9113 §4.1). */
export const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};

/** HPACK "literal without indexing, indexed name" (RFC 7541 §6.2.2) for a static-table name. */
const literal = (nameIndex: number, value: string): Buffer => Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value)]);

/** An HBONE server of either data path, listening on 127.0.0.1:15008 in `netns` and delivering CONNECTs to 127.0.0.1 there. */
export type BoundsServer = (netns: string, limits: Partial<HboneLimits>) => Promise<{ refusals: HboneRefusal[]; close(): void }>;

/**
 * A stream holds at most its window in the agent while the app does not read,
 * and a peer that sends DATA past the window is cut with FLOW_CONTROL_ERROR
 * and counted: the same scenario for both data paths' HBONE servers.
 */
export async function streamWindowScenario(serve: BoundsServer): Promise<void> {
  const { bundle, clientCert } = await boundsCerts();
  const window = 1 << 20;
  const topo = await createTopology(1);
  const pod = topo.pods[0]!;
  let rig: Awaited<ReturnType<BoundsServer>> | undefined;
  const sink = net.createServer((s) => {
    s.on('error', () => s.destroy());
    s.pause(); // the app never reads
  });
  const tlsTo = (): Promise<{ tls: TLSSocket; tcp: net.Socket }> =>
    new Promise((resolve, reject) => {
      const tcp = new net.Socket({ fd: createSocket({ netns: pod.path, family: 4 }) });
      tcp.connect(15008, '127.0.0.1', () => {
        const tls = tlsConnect({ socket: tcp, ...clientTlsOptions(clientCert, bundle, { trustDomain: TD, expected: [serverId] }) });
        tls.once('secureConnect', () => resolve({ tls, tcp }));
        tls.once('error', reject);
      });
      tcp.once('error', reject);
    });
  try {
    // Kernel socket buffers of a few KiB in the pod: what the agent holds is then what the peer could push.
    await inNetns(pod.netns, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_rmem=4096 4096 4096', 'net.ipv4.tcp_wmem=4096 4096 4096']);
    rig = await serve(pod.path, { streamBufferBytes: window });
    await new Promise<void>((resolve) => sink.listen({ fd: createListener({ netns: pod.path, port: 9000, family: 4 }) }, resolve));
    // A well-behaved peer: it may send one window, then waits; the agent holds no more than that.
    const { tls, tcp } = await tlsTo();
    const session = http2Connect('https://127.0.0.1:15008', { createConnection: () => tls });
    session.on('error', () => {});
    const stream = session.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:9000' }, { endStream: false });
    stream.on('error', () => {});
    await new Promise((resolve) => stream.once('response', resolve));
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 128; i++) stream.write(chunk); // 8 MiB
    await sleep(1500);
    const onWire = tcp.bytesWritten;
    assert.ok(onWire > window * 0.9, `${onWire} bytes sent: at least about one window went out`);
    assert.ok(onWire < window + 512 * 1024, `${onWire} bytes reached the agent for a ${window}-byte window while the app reads nothing`);
    session.destroy();

    // A peer that ignores the window: HTTP/2 resets the stream (FLOW_CONTROL_ERROR), and it is counted.
    const raw = await tlsTo();
    const frames: Array<{ type: number; stream: number; code?: number }> = [];
    let pending = Buffer.alloc(0);
    raw.tls.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const length = pending.readUIntBE(0, 3);
        const type = pending[3]!;
        const id = pending.readUInt32BE(5) & 0x7fffffff;
        // The server's SETTINGS (its window among them) take effect once acknowledged.
        if (type === 4 && (pending[4]! & 1) === 0) raw.tls.write(frame(4, 1, 0, Buffer.alloc(0)));
        // RST_STREAM: its error code; GOAWAY: last stream id, then the error code.
        frames.push({ type, stream: id, ...(type === 3 ? { code: pending.readUInt32BE(9) } : {}), ...(type === 7 ? { code: pending.readUInt32BE(13) } : {}) });
        pending = pending.subarray(9 + length);
      }
    });
    raw.tls.on('error', () => {});
    raw.tls.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
    await eventually(() => frames.some((f) => f.type === 4), 'the server’s SETTINGS', 2000);
    await sleep(100);
    raw.tls.write(frame(1, 0x4, 1, Buffer.concat([literal(2, 'CONNECT'), literal(1, '127.0.0.1:9000')])));
    const data = Buffer.alloc(16 * 1024, 2);
    for (let sent = 0; sent < window + 2 * 1024 * 1024; sent += data.length) raw.tls.write(frame(0, 0, 1, data));
    // RST_STREAM on the stream (nghttp2 before Node 26's) or GOAWAY for the connection (Node 26's), both FLOW_CONTROL_ERROR.
    const refusal = () => frames.find((f) => (f.type === 3 && f.stream === 1) || f.type === 7);
    await eventually(() => refusal() !== undefined, 'RST_STREAM on the stream or GOAWAY', 5000);
    assert.equal(refusal()!.code, constants.NGHTTP2_FLOW_CONTROL_ERROR);
    const counted = refusal()!.type === 3 ? 'stream-buffer' : 'protocol-error';
    await eventually(() => rig!.refusals.includes(counted), `counted as ${counted}`, 2000);
    raw.tls.destroy();
  } finally {
    rig?.close();
    sink.close();
    await topo.destroy();
  }
}
