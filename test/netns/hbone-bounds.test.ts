/**
 * Issue 17 finding 7: the bounds of the agent's HBONE server
 * (src/tunnel/hbone-limits.ts), each met by a real peer over real TLS and
 * HTTP/2: connections per peer and in total, the handshake time, idle
 * streams, the bytes a stream may hold, and live sessions cut when the
 * trust bundle drops the root their peer chains to.
 */
import assert from 'node:assert/strict';
import { connect as http2Connect, constants } from 'node:http2';
import net from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootCa, type CaMaterial } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import { clientTlsOptions } from '../../src/identity/tls-context.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import { HboneInbound } from '../../src/tunnel/hbone-inbound.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard, type HboneLimits, type HboneRefusal } from '../../src/tunnel/hbone-limits.js';
import { HbonePool } from '../../src/tunnel/hbone-pool.js';
import { ConnectionRegistry } from '../../src/tunnel/connection-registry.js';
import { eventually } from '../helpers/apiserver.js';
import { createTopology, inNetns } from '../helpers/netns.js';
import { admitted, boundsCerts, clientId, closedWith, echoThrough, rawConnection, serverId, tcpServer, TD } from '../helpers/hbone-bounds.js';
import { rootTest } from '../helpers/root.js';
import { issueWorkloadCert } from '../helpers/workload-certs.js';

const SELF = '/proc/self/ns/net';

interface Rig {
  port: number;
  inbound: HboneInbound;
  guard: HboneGuard;
  refusals: HboneRefusal[];
  close(): void;
}

// After the trust-revocation case, Node's environment teardown spins forever in
// CleanupHandles on a handle that never finishes closing (gdb: uv_run under
// FreeEnvironment; seen on Node 20 and 26). The event loop is empty by then, so
// every result has been written: leave from beforeExit instead of tearing down.
process.once('beforeExit', () => process.exit());

/** The HBONE server of a pod at 127.0.0.1 (in `netns`, default this process's), with these bounds. */
async function hboneServer(cert: WorkloadCertificate, bundle: TrustBundle, limits: Partial<HboneLimits>, netns = SELF): Promise<Rig> {
  const refusals: HboneRefusal[] = [];
  const guard = new HboneGuard({ ...DEFAULT_HBONE_LIMITS, ...limits }, (reason) => refusals.push(reason));
  const inbound = new HboneInbound({ netns, podIps: ['127.0.0.1'], certificate: () => cert, bundle, trustDomain: TD, authorize: () => ({ allow: true }), opened: () => ({ closed: () => {} }), refused: () => {}, guard, connections: new ConnectionRegistry().forPod() });
  const server = net.createServer((s) => inbound.accept(s));
  await new Promise<void>((resolve) => (netns === SELF ? server.listen(0, '127.0.0.1', resolve) : server.listen({ fd: createListener({ netns, port: 15008, family: 4 }) }, resolve)));
  return {
    port: (server.address() as net.AddressInfo).port,
    inbound,
    guard,
    refusals,
    close: () => {
      inbound.close(true);
      server.close();
    },
  };
}

/** A raw connection the agent has accepted and counted. */
let root: CaMaterial;
let bundle: TrustBundle;
let serverCert: WorkloadCertificate;
let clientCert: WorkloadCertificate;

async function setup(): Promise<void> {
  ({ root, bundle, serverCert, clientCert } = await boundsCerts());
}

rootTest('connections per peer IP and in total are capped: one more is reset before any TLS, counted, and a closed one frees its slot', async () => {
  await setup();
  const rig = await hboneServer(serverCert, bundle, { maxConnectionsPerPeer: 3, maxConnections: 5 });
  const open: net.Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await admitted(rig.port, rig.guard, '127.0.0.1'));
    const fourth = rawConnection(rig.port, '127.0.0.1');
    assert.equal(await closedWith(fourth, 1000), 'ECONNRESET', 'a 4th connection from the same peer is reset');
    assert.deepEqual(rig.refusals, ['peer-connections']);
    for (const peer of ['127.0.0.2', '127.0.0.2']) open.push(await admitted(rig.port, rig.guard, peer));
    const sixth = rawConnection(rig.port, '127.0.0.3');
    assert.equal(await closedWith(sixth, 1000), 'ECONNRESET', 'a 6th connection on the node is reset, whoever asks');
    assert.deepEqual(rig.refusals, ['peer-connections', 'total-connections']);
    assert.equal(rig.guard.connections(), 5);
    open.shift()!.destroy();
    await eventually(() => rig.guard.connections() === 4, 'the closed connection is released', 2000);
    // A real HBONE client from the peer that had its slot freed gets through.
    await echoThrough(new HbonePool({ netns: SELF, certificate: () => clientCert, bundle, trustDomain: TD, port: rig.port, limits: DEFAULT_HBONE_LIMITS }));
  } finally {
    for (const s of open) s.destroy();
    rig.close();
  }
});

rootTest('a connection that does not finish its TLS handshake is closed after the handshake timeout, not Node’s 120 s, and its slot is freed', async () => {
  await setup();
  const rig = await hboneServer(serverCert, bundle, { handshakeTimeoutMs: 300 });
  try {
    const silent = await admitted(rig.port, rig.guard, '127.0.0.1');
    const started = Date.now();
    const outcome = await closedWith(silent, 3000);
    const ms = Date.now() - started;
    assert.notEqual(outcome, 'open', 'closed by the agent');
    assert.ok(ms >= 250 && ms < 1500, `closed after ${ms} ms`);
    await eventually(() => rig.refusals.includes('handshake-timeout') && rig.guard.connections() === 0, 'counted as handshake-timeout and released', 2000);
  } finally {
    rig.close();
  }
});

rootTest('a stream idle for the idle timeout is reset; a stream that carries bytes is not', async () => {
  await setup();
  const rig = await hboneServer(serverCert, bundle, { streamIdleTimeoutMs: 400 });
  const echo = await tcpServer((s) => s.pipe(s));
  const pool = new HbonePool({ netns: SELF, certificate: () => clientCert, bundle, trustDomain: TD, port: rig.port, limits: DEFAULT_HBONE_LIMITS });
  try {
    const idle = await pool.open('127.0.0.1', serverId, { ip: '127.0.0.1', port: echo.port });
    const busy = await pool.open('127.0.0.1', serverId, { ip: '127.0.0.1', port: echo.port });
    idle.on('error', () => {});
    busy.on('data', () => {});
    const idleClosed = new Promise<number>((resolve) => idle.once('close', () => resolve(idle.rstCode)));
    for (let i = 0; i < 10; i++) {
      busy.write('tick');
      await sleep(100);
    }
    assert.equal(await Promise.race([idleClosed, sleep(2000).then(() => -1)]), constants.NGHTTP2_CONNECT_ERROR, 'the idle stream was reset');
    assert.ok(!busy.closed && !busy.destroyed, 'the busy stream is still open after 1 s');
    assert.deepEqual(rig.refusals, ['stream-idle']);
    busy.close();
  } finally {
    pool.close();
    echo.server.close();
    rig.close();
  }
});

/** One HTTP/2 frame (RFC 9113 §4.1). */
const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};

/** HPACK "literal without indexing, indexed name" (RFC 7541 §6.2.2) for a static-table name. */
const literal = (nameIndex: number, value: string): Buffer => Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value)]);

rootTest('a stream holds at most its window in the agent while the app does not read, and a peer that sends past the window is reset and counted', async () => {
  await setup();
  const topo = await createTopology(1);
  const pod = topo.pods[0]!;
  // Kernel socket buffers of a few KiB in the pod: what the agent holds is then what the peer could push.
  await inNetns(pod.netns, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_rmem=4096 4096 4096', 'net.ipv4.tcp_wmem=4096 4096 4096']);
  const window = 1 << 20;
  const rig = await hboneServer(serverCert, bundle, { streamBufferBytes: window }, pod.path);
  const sink = net.createServer((s) => {
    s.on('error', () => s.destroy());
    s.pause(); // the app never reads
  });
  await new Promise<void>((resolve) => sink.listen({ fd: createListener({ netns: pod.path, port: 9000, family: 4 }) }, resolve));
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
    await eventually(() => rig.refusals.includes(counted), `counted as ${counted}`, 2000);
    raw.tls.destroy();
  } finally {
    rig.close();
    sink.close();
    await topo.destroy();
  }
});

rootTest('when the trust bundle drops a root, live sessions whose peer chains to it are cut on both sides; the others carry on', async () => {
  await setup();
  const other = await createRootCa(TD);
  const trust = new TrustBundle(`${root.certPem}${other.certPem}`);
  const echo = await tcpServer((s) => s.pipe(s));
  // server1 (root) ← clientA (root) and clientB (other); server2 (other) ← clientA (root).
  const server1 = await hboneServer(serverCert, trust, {});
  const server2 = await hboneServer(await issueWorkloadCert(other, serverId), trust, {});
  const otherClient = await issueWorkloadCert(other, clientId);
  const pools = [
    new HbonePool({ netns: SELF, certificate: () => clientCert, bundle: trust, trustDomain: TD, port: server1.port, limits: DEFAULT_HBONE_LIMITS }),
    new HbonePool({ netns: SELF, certificate: () => otherClient, bundle: trust, trustDomain: TD, port: server1.port, limits: DEFAULT_HBONE_LIMITS }),
    new HbonePool({ netns: SELF, certificate: () => clientCert, bundle: trust, trustDomain: TD, port: server2.port, limits: DEFAULT_HBONE_LIMITS }),
  ];
  let streams: Awaited<ReturnType<HbonePool['open']>>[] = [];
  try {
    streams = await Promise.all(pools.map((p) => p.open('127.0.0.1', serverId, { ip: '127.0.0.1', port: echo.port })));
    const closed = streams.map(() => false);
    streams.forEach((s, i) => {
      s.on('error', () => {});
      s.on('data', () => {});
      s.once('close', () => (closed[i] = true));
    });
    trust.update(root.certPem, 'test');
    await eventually(() => closed[1] === true && closed[2] === true, 'the sessions of the dropped root are cut', 2000);
    // A round trip through both servers after the cut, then the kept session is still open.
    const echoed = new Promise<string>((resolve) => streams[0]!.once('data', (d: Buffer) => resolve(d.toString())));
    streams[0]!.write('still here');
    assert.equal(await echoed, 'still here');
    assert.equal(closed[0], false, 'the session between two peers of the kept root carries on');
    assert.deepEqual(server1.refusals, ['trust-revoked'], 'server1 cut the client of the dropped root');
    assert.deepEqual(server2.refusals, [], 'server2’s client still verifies; the client cut server2');
  } finally {
    for (const s of streams) s.destroy();
    for (const p of pools) p.close();
    server1.close();
    server2.close();
    echo.server.close();
  }
});
