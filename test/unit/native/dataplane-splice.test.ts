import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { nativeFixture, roundTrip, withLoopback, type LoopbackDataplane } from '../../helpers/native-dataplane.js';

// Plain ↔ plain flows (plaintext inbound on :15006, passthrough): both sides
// are sockets, so the native path splices them through a pipe per direction.
// What a user relies on: every byte in order, a FIN carried each way on its
// own (half-close), a reset carried as a reset, no descriptor left behind.

const fx = nativeFixture();
const fds = (): number => readdirSync('/proc/self/fd').length;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Every captured connection goes plain to `port` on loopback (the passthrough decision). */
const plainTo = (port: () => number) => ({ route: () => ({ action: 'connect' as const, netns: '', ip: '127.0.0.1', port: port() }) });

async function listen(handler: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

async function closedFlows(h: LoopbackDataplane, n: number): Promise<void> {
  await h.until(() => h.closed.size === n && h.dp.stats().flows === 0, `${n} flows closed`);
}

test('a plain flow carries 3 × 16 MiB each way byte-exact at once, reports its bytes, and leaves no descriptor', async () => {
  const before = fds();
  await withLoopback(
    fx,
    async (h) => {
      const payloads = [0, 1, 2].map(() => randomBytes(16 * 1024 * 1024 + 5));
      const back = await Promise.all(payloads.map((p) => roundTrip(h.outboundPort, p)));
      for (let i = 0; i < payloads.length; i++) assert.equal(sha(back[i]!), sha(payloads[i]!));
      await closedFlows(h, 3);
      for (const c of h.closed.values()) {
        assert.equal(c.error, undefined);
        assert.equal(c.fromClient, payloads[0]!.length);
        assert.equal(c.fromServer, payloads[0]!.length);
      }
    },
    plainTo(() => fx.echo.port),
  );
  assert.equal(fds(), before, 'sockets and pipes closed');
});

test("a plain flow carries each side's FIN on its own: the server still answers after the client's FIN, then its FIN ends the flow", async () => {
  const app = await listen((s) => {
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    // only once the client's FIN arrived: answer, then end
    s.once('end', () => setTimeout(() => s.end(Buffer.concat([Buffer.from('after your FIN: '), ...got])), 100));
  });
  try {
    await withLoopback(
      fx,
      async (h) => {
        const back = await roundTrip(h.outboundPort, Buffer.from('question'));
        assert.equal(back.toString(), 'after your FIN: question');
        await closedFlows(h, 1);
        assert.equal([...h.closed.values()][0]!.error, undefined);
      },
      plainTo(() => app.port),
    );
  } finally {
    app.server.close();
  }
});

test('a reset carries as a reset both ways on a plain flow, and both sockets are released', async () => {
  let appSide: Socket | undefined;
  const app = await listen((s) => {
    appSide = s;
    s.on('error', () => undefined);
    s.once('data', () => s.write('ready'));
  });
  try {
    await withLoopback(
      fx,
      async (h) => {
        // the server resets: the client sees ECONNRESET, not a clean end
        const c1 = connect({ port: h.outboundPort, host: '127.0.0.1' });
        const gone1 = new Promise<string>((r) => {
          c1.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
          c1.once('end', () => r('FIN'));
        });
        c1.write('hello');
        await new Promise<void>((r) => c1.once('data', () => r()));
        appSide!.resetAndDestroy();
        assert.equal(await gone1, 'ECONNRESET');
        await closedFlows(h, 1);
        assert.notEqual([...h.closed.values()][0]!.error, undefined, 'the flow ended with an error');

        // the client resets: the server sees ECONNRESET
        const c2 = connect({ port: h.outboundPort, host: '127.0.0.1' });
        c2.on('error', () => undefined);
        c2.write('hello');
        await new Promise<void>((r) => c2.once('data', () => r()));
        const server2 = appSide!;
        const gone2 = new Promise<string>((r) => {
          server2.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
          server2.once('end', () => r('FIN'));
        });
        c2.resetAndDestroy();
        assert.equal(await gone2, 'ECONNRESET');
        await closedFlows(h, 2);
      },
      plainTo(() => app.port),
    );
  } finally {
    app.server.close();
  }
});
