import assert from 'node:assert/strict';
import type { ClientHttp2Stream } from 'node:http2';
import { connect as tcpConnect, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { after, before } from 'node:test';
import { createRootCa } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { HboneInbound } from '../../src/tunnel/hbone-inbound.js';
import { HbonePool } from '../../src/tunnel/hbone-pool.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard } from '../../src/tunnel/hbone-limits.js';
import { ConnectionRegistry } from '../../src/tunnel/connection-registry.js';
import { spliceStream } from '../../src/tunnel/stream-splice.js';
import { eventually } from '../helpers/apiserver.js';
import { rootTest } from '../helpers/root.js';
import { issueWorkloadCert } from '../helpers/workload-certs.js';

const SELF = '/proc/self/ns/net';
const id: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };
let bundle: TrustBundle;
let cert: WorkloadCertificate;
let echo: Server;
let hbone: Server;
let inbound: HboneInbound;
/** the HBONE server's streams, as the agent's connection registry tracks them */
const connections = new ConnectionRegistry().forPod();
let echoPort: number;
const echoConnections = new Set<Socket>();
let hbonePort: number;

before(async () => {
  const root = await createRootCa('cluster.local');
  bundle = new TrustBundle(root.certPem);
  cert = await issueWorkloadCert(root, id);
  echo = createTcpServer({ allowHalfOpen: true }, (s: Socket) => {
    echoConnections.add(s);
    s.once('close', () => echoConnections.delete(s));
    s.pipe(s);
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
  inbound = new HboneInbound({ netns: SELF, podIps: ['127.0.0.1'], certificate: () => cert, bundle, trustDomain: 'cluster.local', authorize: () => ({ allow: true }), opened: () => ({ closed: () => {} }), refused: () => {}, guard: new HboneGuard(DEFAULT_HBONE_LIMITS), connections });
  hbone = createTcpServer((s) => inbound.accept(s));
  await new Promise<void>((r) => hbone.listen(0, '127.0.0.1', r));
  hbonePort = (hbone.address() as { port: number }).port;
});

after(() => {
  inbound.close(true);
  hbone.close();
  echo.close();
});

rootTest('200 concurrent streams over the pool all finish and leave nothing open', async () => {
  const pool = new HbonePool({ netns: SELF, certificate: () => cert, bundle, trustDomain: 'cluster.local', port: hbonePort, limits: DEFAULT_HBONE_LIMITS });
  try {
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const stream = await pool.open('127.0.0.1', id, { ip: '127.0.0.1', port: echoPort });
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        await new Promise<void>((resolve, reject) => {
          stream.once('end', resolve);
          stream.once('error', reject);
          stream.end(`stream ${i}`);
        });
        return Buffer.concat(chunks).toString();
      }),
    );
    assert.deepEqual(results, results.map((_, i) => `stream ${i}`));
    assert.ok(pool.stats()[0]!.connections <= 2, `${pool.stats()[0]!.connections} connections`);
    await eventually(() => pool.stats().every((s) => s.streams === 0) && connections.count() === 0, 'every stream closed on both sides', 5000);
  } finally {
    pool.close();
  }
});

rootTest('200 captured connections spliced into streams: echo, then the clients close; every stream and socket is released', async () => {
  const pool = new HbonePool({ netns: SELF, certificate: () => cert, bundle, trustDomain: 'cluster.local', port: hbonePort, limits: DEFAULT_HBONE_LIMITS });
  let spliced = 0;
  const front = createTcpServer({ allowHalfOpen: true }, (s) => {
    void pool.open('127.0.0.1', id, { ip: '127.0.0.1', port: echoPort }).then((stream) => spliceStream(s, stream)).then(() => spliced++);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const port = (front.address() as { port: number }).port;
  try {
    // First a stream whose server dies mid-transfer, leaving data in flight on the shared connection.
    const victim = await new Promise<Socket>((resolve, reject) => { const c = tcpConnect(port, '127.0.0.1', () => resolve(c)); c.once('error', reject); });
    victim.on('error', () => {});
    const flowing = new Promise<string>((r) => victim.once('data', () => r('echoed')));
    victim.on('data', () => {});
    const reset = new Promise<void>((r) => victim.once('close', () => r()));
    const big = Buffer.alloc(1 << 20, 7);
    for (let i = 0; i < 64; i++) victim.write(big);
    // Echoed bytes back: the transfer is under way through the tunnel when its server dies.
    assert.equal(await Promise.race([flowing, new Promise((r) => setTimeout(r, 10_000, 'nothing echoed within 10 s'))]), 'echoed');
    for (const c of echoConnections) c.resetAndDestroy();
    await reset;
    const sockets = await Promise.all(Array.from({ length: 200 }, () => new Promise<Socket>((resolve, reject) => { const c = tcpConnect(port, '127.0.0.1', () => resolve(c)); c.once('error', reject); })));
    const echoed = await Promise.all(sockets.map((c, i) => new Promise<string>((resolve, reject) => { c.once('data', (d: Buffer) => resolve(d.toString())); c.once('error', reject); c.write(`c${i}`); })));
    assert.deepEqual(echoed, sockets.map((_, i) => `c${i}`));
    for (const c of sockets) c.destroy();
    await eventually(() => spliced === 201, 'the victim and all 200 splices finished', 5000);
    await eventually(() => pool.stats().every((x) => x.streams === 0) && connections.count() === 0, 'every stream closed on both sides', 5000);
  } finally {
    front.close();
    pool.close();
  }
});

rootTest('a slow reader stalls the sender instead of filling the tunnel’s buffers; once it reads, every byte arrives', async () => {
  const pool = new HbonePool({ netns: SELF, certificate: () => cert, bundle, trustDomain: 'cluster.local', port: hbonePort, limits: DEFAULT_HBONE_LIMITS });
  const total = 96 << 20;
  let reader: Socket | undefined;
  let received = 0;
  let wrong = 0;
  let readerDone: () => void = () => {};
  const finished = new Promise<void>((r) => (readerDone = r));
  const sink = createTcpServer({ allowHalfOpen: true }, (s) => {
    reader = s;
    s.on('data', (c: Buffer) => {
      received += c.length;
      for (let i = 0; i < c.length; i += 4096) if (c[i] !== 0x5a) wrong++;
    });
    s.pause(); // after 'data' is attached: attaching it would resume
    s.once('end', () => {
      s.end();
      readerDone();
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const front = createTcpServer({ allowHalfOpen: true }, (s) => {
    void pool.open('127.0.0.1', id, { ip: '127.0.0.1', port: (sink.address() as { port: number }).port }).then((stream) => spliceStream(s, stream));
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  let client: Socket | undefined;
  try {
    client = await new Promise<Socket>((resolve, reject) => { const c = tcpConnect((front.address() as { port: number }).port, '127.0.0.1', () => resolve(c)); c.once('error', reject); });
    client.on('data', () => {});
    client.on('error', () => {});
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    let sent = 0;
    const writer = (async () => {
      while (sent < total) {
        sent += chunk.length;
        if (!client!.write(chunk)) await new Promise((r) => client!.once('drain', r));
      }
      client!.end();
    })();
    await eventually(() => reader !== undefined, 'the tunnel reached the reader', 5000);
    await new Promise((r) => setTimeout(r, 1500));
    // What the path absorbed: kernel socket buffers of three TCP hops, the 4 MiB stream window and the
    // proxy's bounded queues — not the 96 MiB the client wants to send.
    const absorbed = sent;
    assert.ok(absorbed < 48 << 20, `the stalled path took ${absorbed >> 20} MiB of ${total >> 20}`);
    assert.ok(received === 0, 'nothing was read yet');
    reader!.resume();
    await writer;
    await finished;
    assert.equal(received, total);
    assert.equal(wrong, 0);
  } finally {
    client?.destroy();
    reader?.destroy();
    front.close();
    sink.close();
    pool.close();
  }
});

rootTest('the pool off (outboundPooling: false): a fresh HBONE connection per stream, closed with it; on: one connection for them all', async () => {
  const accepted = { n: 0 };
  const count = (): void => void accepted.n++;
  hbone.on('connection', count);
  /** 5 streams open at once through a pool with `outboundPooling`: the TCP connections the server accepted for them. */
  const connectionsFor = async (outboundPooling: boolean): Promise<number> => {
    const pool = new HbonePool({ netns: SELF, certificate: () => cert, bundle, trustDomain: 'cluster.local', port: hbonePort, limits: { ...DEFAULT_HBONE_LIMITS, outboundPooling } });
    const before = accepted.n;
    try {
      const streams = await Promise.all(Array.from({ length: 5 }, () => pool.open('127.0.0.1', id, { ip: '127.0.0.1', port: echoPort })));
      const echoed = await Promise.all(streams.map((s, i) => new Promise<string>((resolve, reject) => { s.once('data', (d: Buffer) => resolve(d.toString())); s.once('error', reject); s.write(`s${i}`); })));
      assert.deepEqual(echoed, ['s0', 's1', 's2', 's3', 's4']);
      for (const s of streams) s.end();
      // off: each connection goes with its stream; on: the idle connection stays for the next stream
      await eventually(() => connections.count() === 0, 'every stream closed at the server', 5000);
      if (!outboundPooling) await eventually(() => pool.stats().every((x) => x.connections === 0), 'every connection closed with its stream', 5000);
      return accepted.n - before;
    } finally {
      pool.close();
    }
  };
  try {
    assert.equal(await connectionsFor(true), 1, 'pooled: one connection carries the 5 streams');
    assert.equal(await connectionsFor(false), 5, 'pool off: one connection per stream');
  } finally {
    hbone.off('connection', count);
  }
});

rootTest('with its connections full, a pool puts new streams in the slots closed streams freed before it dials another connection', async () => {
  const pool = new HbonePool({ netns: SELF, certificate: () => cert, bundle, trustDomain: 'cluster.local', port: hbonePort, limits: DEFAULT_HBONE_LIMITS });
  const open = async (n: number): Promise<ClientHttp2Stream[]> => {
    const out: ClientHttp2Stream[] = [];
    // one after another: the first 100 share the first connection, and so on
    for (let i = 0; i < n; i++) out.push(await pool.open('127.0.0.1', id, { ip: '127.0.0.1', port: echoPort }));
    return out;
  };
  const connectionsNow = (): number => pool.stats()[0]?.connections ?? 0;
  try {
    const held = await open(250);
    assert.deepEqual(pool.stats().map((s) => [s.connections, s.streams]), [[3, 250]], '250 streams: two full connections and one half full');
    // 20 streams of the first (full) connection end
    await Promise.all(held.slice(0, 20).map((s) => new Promise<void>((resolve) => { s.once('close', () => resolve()); s.close(); })));
    assert.equal(pool.stats()[0]!.streams, 230);
    // the third connection's 50 free slots and the first one's 20
    held.push(...(await open(70)));
    assert.deepEqual(pool.stats().map((s) => [s.connections, s.streams]), [[3, 300]], 'the freed slots were used; no connection dialed');
    held.push(...(await open(1)));
    assert.equal(connectionsNow(), 4, 'every slot taken: the next stream gets a new connection');
    for (const s of held) s.close();
    await eventually(() => connections.count() === 0 && echoConnections.size === 0, 'every stream and echo connection closed', 10_000);
  } finally {
    pool.close();
  }
});
