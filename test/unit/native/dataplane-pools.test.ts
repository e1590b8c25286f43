import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSpiffeId } from '../../../src/identity/spiffe.js';
import { podTunnels } from '../../../src/tunnel/native-pod-proxy.js';
import { CLIENT, SERVER, holdOpen, nativeFixture, withLoopback } from '../../helpers/native-dataplane.js';

// The admin API's /connections lists each pod's pooled HBONE sessions on the native data
// path as on the Node one (HbonePool.stats: per peer, sessions and their open streams),
// read from the workers that own the pools.

const fx = nativeFixture();

test('the workers list their pooled HBONE sessions with their open streams; idle sessions stay listed until they close', async () => {
  await withLoopback(fx, async (h) => {
    assert.deepEqual(h.dp.pools(), [], 'no session before the first connection');
    const held = await holdOpen(h.outboundPort, 6);
    try {
      const pools = h.dp.pools();
      // 2 workers: flows are dealt over one session per worker
      assert.equal(pools.length, 2, JSON.stringify(pools));
      for (const p of pools) {
        assert.deepEqual({ netns: p.netns, identity: p.identity, expected: p.expected, ip: p.ip }, { netns: '', identity: formatSpiffeId(CLIENT), expected: formatSpiffeId(SERVER), ip: '127.0.0.1' });
        assert.equal(p.sessions, 1);
      }
      assert.equal(pools.reduce((n, p) => n + p.streams, 0), 6, 'every held connection is an open stream of a pooled session');
      assert.deepEqual(podTunnels(pools, ''), [{ key: `${formatSpiffeId(SERVER)}|127.0.0.1`, connections: 2, streams: 6 }]);
      assert.deepEqual(podTunnels(pools, '/var/run/netns/another-pod'), [], 'another pod’s netns has none');
    } finally {
      for (const s of held) s.destroy();
    }
    await h.until(() => h.closed.size === 12, 'all 12 flows closed');
    assert.deepEqual(podTunnels(h.dp.pools(), ''), [{ key: `${formatSpiffeId(SERVER)}|127.0.0.1`, connections: 2, streams: 0 }], 'pooled for the next connections, no stream open');
  });
});

test('a pod’s tunnels: its own netns only, one entry per peer identity and address summed over the workers', () => {
  const pool = (netns: string, expected: string, ip: string, sessions: number, streams: number) => ({ netns, identity: 'spiffe://cluster.local/ns/a/sa/a', expected, ip, sessions, streams });
  const web = 'spiffe://cluster.local/ns/a/sa/web';
  const db = 'spiffe://cluster.local/ns/a/sa/db';
  const pools = [pool('/ns/a', web, '10.0.0.2', 1, 3), pool('/ns/a', web, '10.0.0.2', 2, 150), pool('/ns/a', web, '10.0.0.3', 1, 0), pool('/ns/a', db, '10.0.0.2', 1, 1), pool('/ns/b', web, '10.0.0.2', 1, 9)];
  assert.deepEqual(podTunnels(pools, '/ns/a'), [
    { key: `${web}|10.0.0.2`, connections: 3, streams: 153 },
    { key: `${web}|10.0.0.3`, connections: 1, streams: 0 },
    { key: `${db}|10.0.0.2`, connections: 1, streams: 1 },
  ]);
});
