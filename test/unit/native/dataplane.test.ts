import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { test } from 'node:test';
import { formatSpiffeId } from '../../../src/identity/spiffe.js';
import { CLIENT, LoopbackDataplane, nativeFixture, roundTrip, withLoopback, type LoopbackOptions } from '../../helpers/native-dataplane.js';

// The native data path end to end on loopback: captured connection →
// HBONE client (mutual TLS 1.3, HTTP/2 CONNECT) → HBONE server → app,
// every decision made here in TypeScript.

const fx = nativeFixture();

const fds = (): number => readdirSync('/proc/self/fd').length;

const withDataplane = (fn: (h: LoopbackDataplane) => Promise<void>, o: LoopbackOptions = {}): Promise<void> => withLoopback(fx, fn, o);

test('bytes and half-close cross the tunnel both ways; the CONNECT carries the client identity and the app target', async () => {
  await withDataplane(async (h) => {
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const back = await roundTrip(h.outboundPort, payload);
    assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    const connect = h.decided.find((e) => e.type === 'decide' && e.kind === 'connect');
    assert.ok(connect !== undefined && connect.type === 'decide' && connect.kind === 'connect');
    assert.equal(connect.peer, formatSpiffeId(CLIENT));
    assert.equal(connect.authority, `127.0.0.1:${fx.echo.port}`);
    await h.until(() => h.closed.size === 2, 'both flows closed');
    for (const c of h.closed.values()) {
      assert.equal(c.opened, true);
      assert.equal(c.error, undefined);
      assert.equal(c.fromClient, payload.length);
      assert.equal(c.fromServer, payload.length);
    }
  });
});

test('200 concurrent connections, accepted by either worker, share at most two HBONE connections and leave nothing open', async () => {
  await withDataplane(async (h) => {
    const before = fds();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => roundTrip(h.outboundPort, Buffer.from(`conn ${i}`))));
    assert.deepEqual(results.map(String), results.map((_, i) => `conn ${i}`));
    await h.until(() => h.closed.size === 400, 'all 400 flows (both ends) closed');
    const st = h.dp.stats();
    assert.equal(st.flows, 0);
    assert.equal(st.streams, 0);
    // one pool per worker, flows dealt round them: ≤ 2 client sessions of ≤ 100 streams, + their server ends
    assert.ok(st.sessions <= 4, `sessions ${st.sessions}`);
    assert.ok(fds() <= before + st.sessions + 2, `fds ${before} → ${fds()}`);
  });
});

test("one peer's concurrent streams are dealt over one HBONE session per worker, not all carried by one TLS connection", async () => {
  await withDataplane(async (h) => {
    // held open, so that every stream is live at once
    const held = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) =>
          new Promise<Socket>((resolve, reject) => {
            const s = connect({ port: h.outboundPort, host: '127.0.0.1' });
            s.once('error', reject);
            s.once('data', () => resolve(s));
            s.write(`conn ${i}`);
          }),
      ),
    );
    try {
      const st = h.dp.stats();
      assert.equal(st.streams, 16, 'both ends of 8 streams');
      // 2 workers: a client session on each, and each server end dealt to its own worker
      assert.equal(st.sessions, 4, `sessions ${st.sessions}`);
    } finally {
      for (const s of held) s.destroy();
    }
    await h.until(() => h.closed.size === 16, 'all 16 flows closed');
  });
});

test('the HBONE server picks TLS_AES_128_GCM_SHA256 even for a client that lists AES-256 first (less cipher work per byte)', async () => {
  await withDataplane(async (h) => {
    // Node's own order puts TLS_AES_256_GCM_SHA384 first; the server's order decides.
    const s = tlsConnect({ host: '127.0.0.1', port: h.hbonePort, rejectUnauthorized: false, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('secureConnect', resolve);
        s.once('error', reject);
      });
      assert.equal(s.getCipher().standardName, 'TLS_AES_128_GCM_SHA256');
    } finally {
      s.destroy();
    }
  });
});

test('a denied CONNECT resets the client and both ends report the 401; the app is never reached', async () => {
  await withDataplane(
    async (h) => {
      const accepted = fx.echo.sockets.size;
      await assert.rejects(roundTrip(h.outboundPort, Buffer.from('x')), /ECONNRESET|socket hang up/);
      await h.until(() => h.closed.size === 2, 'both ends closed');
      for (const c of h.closed.values()) {
        assert.equal(c.opened, false);
        assert.equal(c.status, 401);
      }
      assert.equal(fx.echo.sockets.size, accepted);
    },
    { authorize: () => ({ action: 'reject', status: 401, reason: 'denied by test' }) },
  );
});

test('a peer proving another identity than expected gets no CONNECT: the client is refused', async () => {
  await withDataplane(async (h) => {
    h.expected = 'spiffe://cluster.local/ns/shop/sa/someone-else';
    await assert.rejects(roundTrip(h.outboundPort, Buffer.from('x')), /ECONNRESET|socket hang up/);
    await h.until(() => h.closed.size === 1, 'the outbound flow closed');
    const [c] = [...h.closed.values()];
    assert.match(c!.error ?? '', /the peer is spiffe:\/\/cluster.local\/ns\/shop\/sa\/web, expected .*someone-else/);
    assert.equal(h.decided.filter((e) => e.type === 'decide' && e.kind === 'connect').length, 0);
  });
});

test('closing a live connection by id resets it at both ends', async () => {
  await withDataplane(async (h) => {
    const s: Socket = connect({ port: h.outboundPort, host: '127.0.0.1' });
    const gone = new Promise<string>((r) => {
      s.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
      s.once('close', () => r('closed'));
    });
    s.write('hello');
    await new Promise<void>((r) => s.once('data', () => r()));
    const outbound = h.decided.find((e) => e.type === 'decide' && e.kind === 'outbound')!;
    h.dp.close(outbound.id, 'policy changed');
    assert.equal(await gone, 'ECONNRESET');
    await h.until(() => h.closed.size === 2, 'both ends closed');
    assert.equal(h.closed.get(outbound.id)?.error, 'policy changed');
    await h.until(() => fx.echo.sockets.size === 0, 'the app connection closed');
  });
});

test('a slow reader stalls the sender: memory stays bounded while 64 MiB wait', async () => {
  await withDataplane(async (h) => {
    const s: Socket = connect({ port: h.outboundPort, host: '127.0.0.1' });
    s.pause();
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let written = 0;
    const rss0 = process.memoryUsage().rss;
    // write until the kernel and the tunnel push back, without reading
    for (let i = 0; i < 64 && s.write(chunk); i++) written += chunk.length;
    await new Promise((r) => setTimeout(r, 1500));
    const grown = process.memoryUsage().rss - rss0;
    // windows (4 MiB a stream) and the 256 KiB relay bounds cap what the path holds
    assert.ok(grown < 48 * 1024 * 1024, `RSS grew ${grown}`);
    s.destroy();
    await h.until(() => h.dp.stats().flows === 0, 'flows released');
    assert.ok(written < 64 * 1024 * 1024);
  });
});

test('a listening data path keeps the process alive, as a net.Server does; the process ends once nothing listens', () => {
  const dataplane = new URL('../../../src/native/dataplane.js', import.meta.url).href;
  const sockets = new URL('../../../src/native/netns-socket.js', import.meta.url).href;
  const script = `
    import { Dataplane } from '${dataplane}';
    import { createListener } from '${sockets}';
    const dp = new Dataplane(1, () => {});
    const id = dp.listen(createListener({ address: '127.0.0.1', port: 0 }), 'outbound');
    const t0 = Date.now();
    process.on('exit', () => console.log(Date.now() - t0 >= 400 ? 'stayed' : 'left early'));
    // the only thing left on the event loop is unref'd: the listener alone must hold the process
    setTimeout(() => dp.unlisten(id), 400).unref();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'stayed');
});
