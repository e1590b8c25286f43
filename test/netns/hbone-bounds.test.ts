/**
 * Issue 17 finding 7: the bounds of the agent's HBONE server
 * (src/tunnel/hbone-limits.ts), each met by a real peer over real TLS and
 * HTTP/2: connections per peer and in total, the handshake time, idle
 * streams, the bytes a stream may hold, and live sessions cut when the
 * trust bundle drops the root their peer chains to.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootCa, type CaMaterial } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { createListener } from '../../src/native/netns-socket.js';
import { HboneInbound } from '../../src/tunnel/hbone-inbound.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard, type HboneLimits, type HboneRefusal } from '../../src/tunnel/hbone-limits.js';
import { HbonePool } from '../../src/tunnel/hbone-pool.js';
import { ConnectionRegistry } from '../../src/tunnel/connection-registry.js';
import { eventually } from '../helpers/apiserver.js';
import { admitted, boundsCerts, clientId, closedWith, echoThrough, rawConnection, serverId, streamWindowScenario, tcpServer, TD } from '../helpers/hbone-bounds.js';
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

rootTest('a stream holds at most its window in the agent while the app does not read, and a peer that sends past the window is reset and counted', async () => {
  await setup();
  await streamWindowScenario((netns, limits) => hboneServer(serverCert, bundle, limits, netns));
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
