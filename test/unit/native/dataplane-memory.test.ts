import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { formatSpiffeId } from '../../../src/identity/spiffe.js';
import { createListener } from '../../../src/native/netns-socket.js';
import { CLIENT, SERVER, freePort, nativeFixture, withLoopback } from '../../helpers/native-dataplane.js';

// Memory of the native data path under light traffic: a node carries many HBONE
// sessions that each move a little every second. Their buffers must be sized by what
// they move, not by the largest batch (256 KiB TLS reads and batches) they ever had.

const fx = nativeFixture();
const KiB = 1024;
const THREADS = 2;
const PORTS = 8;
const PER_PORT = 2;
/** the workers' own TLS read buffers (kTlsIn in engine.cc: 16 records of 16 KiB + 22) */
const READ_BUFFER = 16 * (16 * KiB + 22);

/** Sends `data` on an open connection and resolves once as many bytes came back. */
function echo(s: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got < data.length) return;
      s.off('data', onData);
      s.off('error', reject);
      resolve();
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(data);
  });
}

test('sessions and streams that move 1 KiB a few times a second after a 1 MiB burst hold a few KiB each, not their batch buffers', async () => {
  // One pooled session per HBONE port and worker: PORTS × THREADS client sessions and as many server ones.
  const ports: number[] = [];
  let next = 0;
  await withLoopback(
    fx,
    async (h) => {
      ports.push(h.hbonePort);
      for (let i = 1; i < PORTS; i++) {
        const port = await freePort();
        h.dp.listen(createListener({ address: '127.0.0.1', port }), 'hbone', formatSpiffeId(SERVER));
        ports.push(port);
      }
      const conns = await Promise.all(
        Array.from({ length: PORTS * PER_PORT }, () => new Promise<Socket>((resolve, reject) => {
          const s = connect({ port: h.outboundPort, host: '127.0.0.1' }, () => resolve(s));
          s.once('error', reject);
        })),
      );
      try {
        // a burst grows every batch buffer and stream queue on the way
        await Promise.all(conns.map((s) => echo(s, randomBytes(1024 * KiB))));
        // then 1 KiB each way every 200 ms for 3 s: every session is active every second
        // (the workers' once-a-second tick sees two quiet-ish seconds after the burst)
        const ping = randomBytes(KiB);
        for (let round = 0; round < 15; round++) {
          await Promise.all(conns.map((s) => echo(s, ping)));
          await new Promise((r) => setTimeout(r, 200));
        }
        const stats = h.dp.stats();
        assert.ok(stats.sessions >= 2 * PORTS, `a session per port at least on each end: ${JSON.stringify(stats)}`);
        assert.equal(stats.flows, 2 * conns.length, 'each connection is an outbound flow and an inbound CONNECT flow');
        const bound = THREADS * READ_BUFFER + (stats.sessions + stats.flows) * 8 * KiB;
        assert.ok(stats.buffered <= bound, `buffered ${stats.buffered} B > ${bound} B (≤ 8 KiB per session and flow): ${JSON.stringify(stats)}`);
      } finally {
        for (const s of conns) s.destroy();
      }
      await h.until(() => h.dp.stats().flows === 0, 'every flow closed');
    },
    {
      threads: THREADS,
      route: (e, h) => ({ action: 'hbone', netns: '', ip: '127.0.0.1', port: ports[next++ % PORTS]!, identity: formatSpiffeId(CLIENT), expected: h.expected, authority: `127.0.0.1:${h.target}`, forwarded: `for=${e.srcIp}` }),
    },
  );
});

// What nghttp2 holds for idle tunnels (Stats.http2Bytes, counted by the engine's allocator):
// a node holds thousands of them, each a stream on a pooled session. Two regressions this
// pins: asking nghttp2 for 64 KiB frames whatever waited grew every session's frame buffer to
// 64 KiB for good (~72 KiB a session instead of ~23), and a DATA item kept per stream while
// idle (~300 bytes a stream instead of ~140).
test('an idle tunnel: nghttp2 holds ≤ 32 KiB per HBONE session and ≤ 240 bytes per stream once each moved a byte each way', async () => {
  const CONNS = 300;
  await withLoopback(
    fx,
    async (h) => {
      const conns = await Promise.all(
        Array.from({ length: CONNS }, () => new Promise<Socket>((resolve, reject) => {
          const s = connect({ port: h.outboundPort, host: '127.0.0.1' }, () => resolve(s));
          s.once('error', reject);
        })),
      );
      let open;
      try {
        await Promise.all(conns.map((s) => echo(s, Buffer.from('x'))));
        open = h.dp.stats();
        assert.equal(open.streams, 2 * CONNS, `each connection is a stream on both ends: ${JSON.stringify(open)}`);
      } finally {
        for (const s of conns) s.destroy();
      }
      await h.until(() => h.dp.stats().flows === 0 && h.dp.stats().streams === 0, 'every flow and stream closed');
      // the pooled sessions stay (idle for minutes before they close): what they hold alone
      const idle = h.dp.stats();
      assert.equal(idle.sessions, open.sessions, 'the sessions stay pooled');
      const perSession = idle.http2Bytes / idle.sessions;
      const perStream = (open.http2Bytes - idle.http2Bytes) / open.streams;
      assert.ok(perSession > 4 * KiB && perSession <= 32 * KiB, `${perSession.toFixed(0)} B per session (${idle.sessions} sessions): ${JSON.stringify(idle)}`);
      assert.ok(perStream > 0 && perStream <= 240, `${perStream.toFixed(0)} B per idle stream (${open.streams} streams): ${JSON.stringify(open)}`);
    },
    { threads: THREADS },
  );
});
