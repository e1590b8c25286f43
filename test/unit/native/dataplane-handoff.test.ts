import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { formatSpiffeId } from '../../../src/identity/spiffe.js';
import { clientPort, waypointHeader } from '../../../src/tunnel/waypoint-handoff.js';
import type { ProxyV2Header } from '../../../src/waypoint/proxy-protocol.js';
import { proxyV2Echo } from '../../helpers/proxy-v2-echo.js';
import { CLIENT, nativeFixture, roundTrip, withLoopback } from '../../helpers/native-dataplane.js';

// The waypoint hand-off on the native data path (docs/architecture.md §13): an
// inbound CONNECT resolved as a connect with a `prefix` reaches its upstream
// with that PROXY v2 header first, then the client's bytes, both ways.

const fx = nativeFixture();
const VIP = { ip: '10.96.0.42', port: 9000 };

/** A stand-in waypoint listener: decodes the PROXY v2 header of each connection, then echoes the rest. */
async function waypointListener(): Promise<{ server: Server; port: number; headers: ProxyV2Header[]; accepted: () => number }> {
  const headers: ProxyV2Header[] = [];
  let accepted = 0;
  const echo = proxyV2Echo(headers);
  const server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    accepted++;
    echo(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, headers, accepted: () => accepted };
}

test('a hand-off CONNECT carries its Forwarded header to the decision; the prefix reaches the upstream first, then bytes both ways, not counted as client bytes', async () => {
  const w = await waypointListener();
  try {
    await withLoopback(
      fx,
      async (h) => {
        const payload = randomBytes(256 * 1024 + 3);
        const back = await roundTrip(h.outboundPort, payload);
        assert.ok(back.equals(payload), 'the echoed bytes came back whole');
        const connect = h.decided.find((e) => e.type === 'decide' && e.kind === 'connect');
        assert.ok(connect?.type === 'decide' && connect.kind === 'connect');
        const outbound = h.decided.find((e) => e.type === 'decide' && e.kind === 'outbound');
        assert.ok(outbound?.type === 'decide' && outbound.kind === 'outbound');
        assert.equal(connect.forwarded, `for="127.0.0.1:${outbound.srcPort}"`);
        assert.deepEqual(w.headers, [{ source: { address: '127.0.0.1', port: outbound.srcPort }, destination: { address: VIP.ip, port: VIP.port }, clientSpiffeId: formatSpiffeId(CLIENT) }]);
        await h.until(() => h.closed.size === 2, 'both flows closed');
        for (const c of h.closed.values()) {
          assert.equal(c.error, undefined);
          assert.equal(c.fromClient, payload.length);
          assert.equal(c.fromServer, payload.length);
        }
      },
      {
        route: (e, h) => ({ action: 'hbone', netns: '', ip: '127.0.0.1', port: h.hbonePort, identity: formatSpiffeId(CLIENT), expected: h.expected, authority: `${VIP.ip}:${VIP.port}`, forwarded: `for="${e.srcIp}:${e.srcPort}"` }),
        authorize: (e) => ({
          action: 'connect',
          netns: '',
          ip: '127.0.0.1',
          port: w.port,
          prefix: waypointHeader({ peer: CLIENT, source: { ip: e.srcIp, port: clientPort(e.forwarded, e.srcIp, e.srcPort) }, target: VIP }),
        }),
      },
    );
  } finally {
    w.server.close();
  }
});

test('a prefix over 512 bytes is refused by the addon: the flow is reset and the upstream never dialed', async () => {
  const w = await waypointListener();
  try {
    await withLoopback(
      fx,
      async (h) => {
        await assert.rejects(roundTrip(h.outboundPort, Buffer.from('x')), /ECONNRESET|socket hang up/);
        await h.until(() => h.closed.size === 2, 'both flows closed');
        const connect = h.decided.find((e) => e.type === 'decide' && e.kind === 'connect')!;
        assert.match(h.closed.get(connect.id)?.error ?? '', /prefix over 512 bytes/);
        assert.equal(w.accepted(), 0);
      },
      { authorize: () => ({ action: 'connect', netns: '', ip: '127.0.0.1', port: w.port, prefix: Buffer.alloc(513, 1) }) },
    );
  } finally {
    w.server.close();
  }
});
