import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { startHttpEcho } from '../../../src/sim/apps/http-echo.js';

/** The simulator's http-echo stand-in: the paths that misbehave on purpose, for the waypoint's timeouts and retries (test/e2e/waypoint-l7.test.ts). */
let base = '';
let server: ReturnType<typeof startHttpEcho>;
before(async () => {
  server = startHttpEcho(0, 'web-1', 'shop');
  await once(server, 'listening');
  base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test('every other path answers 200 with JSON naming the pod and the request', async () => {
  const r = await fetch(`http://${base}/anything?x=1`, { headers: { 'x-a': 'b' } });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { pod: string; url: string; headers: Record<string, string> };
  assert.deepEqual([body.pod, body.url, body.headers['x-a']], ['web-1', '/anything?x=1', 'b']);
});

test('/status/N answers with code N', async () => {
  assert.equal((await fetch(`http://${base}/status/503`)).status, 503);
  assert.equal((await fetch(`http://${base}/status/418`)).status, 418);
});

test('/delay/N answers after N seconds', async () => {
  const t0 = performance.now();
  const r = await fetch(`http://${base}/delay/0.3`);
  assert.equal(r.status, 200);
  assert.ok(performance.now() - t0 >= 290, `answered after ${performance.now() - t0} ms`);
});

test('/flaky/N fails the first N requests with the same x-request-id, then serves it, counting attempts', async () => {
  const get = async (id: string) => {
    const r = await fetch(`http://${base}/flaky/2`, { headers: { 'x-request-id': id } });
    return [r.status, ((await r.json()) as { attempt: number }).attempt];
  };
  assert.deepEqual(await get('a'), [503, 1]);
  assert.deepEqual(await get('b'), [503, 1], 'another request id counts apart');
  assert.deepEqual(await get('a'), [503, 2]);
  assert.deepEqual(await get('a'), [200, 3]);
});

test('a WebSocket gets each message back, prefixed with the pod name', async () => {
  const ws = new WebSocket(`ws://${base}/`);
  await once(ws, 'open');
  ws.send('ping');
  const [reply] = (await once(ws, 'message')) as [Buffer];
  ws.close();
  assert.equal(reply.toString(), 'web-1: ping');
});
