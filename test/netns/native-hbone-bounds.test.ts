/**
 * The HBONE server's bounds (src/tunnel/hbone-limits.ts) on the native data
 * path, as test/netns/hbone-bounds.test.ts checks them on the Node one: the
 * addon's HBONE listener behind the agent's NativeHub and its HboneGuard, met
 * by a real peer (the Node path's HbonePool, raw TCP, raw TLS) over real TLS.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootCa, type CaMaterial } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import { formatSpiffeId } from '../../src/identity/spiffe.js';
import { clientTlsOptions } from '../../src/identity/tls-context.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { createListener } from '../../src/native/netns-socket.js';
import type { DataPlane } from '../../src/tunnel/dataplane.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard, type HboneLimits, type HboneRefusal } from '../../src/tunnel/hbone-limits.js';
import { HbonePool } from '../../src/tunnel/hbone-pool.js';
import { NativeHub } from '../../src/tunnel/native-hub.js';
import { eventually } from '../helpers/apiserver.js';
import { freePort } from '../helpers/native-dataplane.js';
import { admitted, boundsCerts, clientId, closedWith, echoThrough, rawConnection, serverId, streamWindowScenario, tcpServer, TD } from '../helpers/hbone-bounds.js';
import { rootTest } from '../helpers/root.js';
import { issueWorkloadCert } from '../helpers/workload-certs.js';

const SELF = '/proc/self/ns/net';

interface Rig {
  port: number;
  guard: HboneGuard;
  refusals: HboneRefusal[];
  close(): void;
}

let root: CaMaterial;
let bundle: TrustBundle;
let serverCert: WorkloadCertificate;
let clientCert: WorkloadCertificate;

async function setup(): Promise<void> {
  ({ root, bundle, serverCert, clientCert } = await boundsCerts());
}

/** The native HBONE server of a pod at 127.0.0.1 (in `netns`, default this process's, on :15008 there) with these bounds; every CONNECT to 127.0.0.1 is allowed. */
async function nativeServer(limits: Partial<HboneLimits>, trust = bundle, netns = SELF): Promise<Rig> {
  const refusals: HboneRefusal[] = [];
  const guard = new HboneGuard({ ...DEFAULT_HBONE_LIMITS, ...limits }, (reason) => refusals.push(reason));
  const plane = { trustDomain: TD, bundle: trust, certificate: () => serverCert, hbone: guard } as unknown as DataPlane;
  const hub = new NativeHub(plane, 2);
  hub.useIdentity(serverId);
  const port = netns === SELF ? await freePort() : 15008;
  hub.listen(
    netns === SELF ? createListener({ address: '127.0.0.1', port }) : createListener({ netns, port, family: 4 }),
    'hbone',
    {
      decide: (e) => {
        if (e.kind !== 'connect') return { action: 'reset', reason: 'not a CONNECT' };
        const m = /^127\.0\.0\.1:(\d+)$/.exec(e.authority);
        if (m === null) return { action: 'reject', status: 400, reason: 'not local' };
        // carried, as a pod's proxy carries what it allows: the hub names its peer when a bound ends it
        hub.carry(e.id, { peerIp: e.srcIp, opened: () => {}, closed: () => {} });
        return { action: 'connect', netns: netns === SELF ? '' : netns, ip: '127.0.0.1', port: Number(m[1]) };
      },
    },
    formatSpiffeId(serverId),
  );
  return { port, guard, refusals, close: () => hub.stop() };
}

const poolTo = (port: number): HbonePool => new HbonePool({ netns: SELF, certificate: () => clientCert, bundle, trustDomain: TD, port, limits: DEFAULT_HBONE_LIMITS });

rootTest('native: connections per peer IP and in total are capped: one more is reset before any TLS, counted, and a closed one frees its slot', async () => {
  await setup();
  const rig = await nativeServer({ maxConnectionsPerPeer: 3, maxConnections: 5 });
  const open: net.Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await admitted(rig.port, rig.guard, '127.0.0.1'));
    const fourth = rawConnection(rig.port, '127.0.0.1');
    assert.equal(await closedWith(fourth, 2000), 'ECONNRESET', 'a 4th connection from the same peer is reset');
    assert.deepEqual(rig.refusals, ['peer-connections']);
    for (const peer of ['127.0.0.2', '127.0.0.2']) open.push(await admitted(rig.port, rig.guard, peer));
    const sixth = rawConnection(rig.port, '127.0.0.3');
    assert.equal(await closedWith(sixth, 2000), 'ECONNRESET', 'a 6th connection on the node is reset, whoever asks');
    assert.deepEqual(rig.refusals, ['peer-connections', 'total-connections']);
    assert.equal(rig.guard.connections(), 5);
    open.shift()!.destroy();
    await eventually(() => rig.guard.connections() === 4, 'the closed connection is released', 2000);
    // A real HBONE client from the peer that had its slot freed gets through.
    await echoThrough(poolTo(rig.port));
  } finally {
    for (const s of open) s.destroy();
    rig.close();
  }
});

rootTest('native: a connection that does not finish its TLS handshake is closed after the handshake timeout and its slot is freed', async () => {
  await setup();
  const rig = await nativeServer({ handshakeTimeoutMs: 300 });
  try {
    const silent = await admitted(rig.port, rig.guard, '127.0.0.1');
    const started = Date.now();
    const outcome = await closedWith(silent, 5000);
    const ms = Date.now() - started;
    assert.notEqual(outcome, 'open', 'closed by the agent');
    // the workers check their timers once a second
    assert.ok(ms >= 250 && ms < 2500, `closed after ${ms} ms`);
    await eventually(() => rig.refusals.includes('handshake-timeout') && rig.guard.connections() === 0, 'counted as handshake-timeout and released', 2000);
  } finally {
    rig.close();
  }
});

rootTest('native: a stream idle for the idle timeout is reset; a stream that carries bytes is not', async () => {
  await setup();
  const rig = await nativeServer({ streamIdleTimeoutMs: 400 });
  const echo = await tcpServer((s) => s.pipe(s));
  const pool = poolTo(rig.port);
  try {
    const idle = await pool.open('127.0.0.1', serverId, { ip: '127.0.0.1', port: echo.port });
    const busy = await pool.open('127.0.0.1', serverId, { ip: '127.0.0.1', port: echo.port });
    idle.on('error', () => {});
    busy.on('data', () => {});
    let idleClosed = false;
    idle.once('close', () => (idleClosed = true));
    // the workers check once a second: 2.5 s of ticks on the busy stream
    for (let i = 0; i < 25 && !idleClosed; i++) {
      busy.write('tick');
      await sleep(100);
    }
    assert.equal(idleClosed, true, 'the idle stream was reset');
    assert.ok(!busy.closed && !busy.destroyed, 'the busy stream is still open');
    await eventually(() => rig.refusals.includes('stream-idle'), 'counted as stream-idle', 2000);
    assert.deepEqual(rig.refusals, ['stream-idle']);
    busy.close();
  } finally {
    pool.close();
    echo.server.close();
    rig.close();
  }
});

rootTest('native: a peer that breaks HTTP/2 after mutual TLS is closed, counted as protocol-error, and its slot freed', async () => {
  await setup();
  const rig = await nativeServer({});
  try {
    const tls = tlsConnect({ port: rig.port, host: '127.0.0.1', ...clientTlsOptions(clientCert, bundle, { trustDomain: TD, expected: [serverId] }) });
    tls.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      tls.once('secureConnect', resolve);
      tls.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => tls.once('close', () => resolve()));
    tls.write(Buffer.from('GET / HTTP/1.1\r\nHost: not-http2\r\n\r\n'));
    await Promise.race([closed, sleep(3000).then(() => assert.fail('still open 3 s after a bad preface'))]);
    await eventually(() => rig.refusals.includes('protocol-error') && rig.guard.connections() === 0, 'counted as protocol-error and released', 2000);
  } finally {
    rig.close();
  }
});

rootTest('native: a stream holds at most its window in the agent while the app does not read, and a peer that sends past the window is cut with FLOW_CONTROL_ERROR and counted', async () => {
  await setup();
  await streamWindowScenario((netns, limits) => nativeServer(limits, bundle, netns));
});

rootTest('native: when the trust bundle drops a root, live sessions whose peer chains to it are cut and counted; the others carry on', async () => {
  await setup();
  const other = await createRootCa(TD);
  const trust = new TrustBundle(`${root.certPem}${other.certPem}`);
  const echo = await tcpServer((s) => s.pipe(s));
  const rig = await nativeServer({}, trust);
  const otherClient = await issueWorkloadCert(other, clientId);
  const pools = [clientCert, otherClient].map((cert) => new HbonePool({ netns: SELF, certificate: () => cert, bundle: new TrustBundle(`${root.certPem}${other.certPem}`), trustDomain: TD, port: rig.port, limits: DEFAULT_HBONE_LIMITS }));
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
    await eventually(() => closed[1] === true, 'the session of the dropped root is cut', 3000);
    const echoed = new Promise<string>((resolve) => streams[0]!.once('data', (d: Buffer) => resolve(d.toString())));
    streams[0]!.write('still here');
    assert.equal(await echoed, 'still here');
    assert.equal(closed[0], false, 'the session of the kept root carries on');
    await eventually(() => rig.refusals.includes('trust-revoked'), 'counted as trust-revoked', 2000);
    assert.deepEqual(rig.refusals, ['trust-revoked']);
  } finally {
    for (const s of streams) s.destroy();
    for (const p of pools) p.close();
    rig.close();
    echo.server.close();
  }
});
