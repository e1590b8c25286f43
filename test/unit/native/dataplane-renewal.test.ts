import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootCa } from '../../../src/ca/signer.js';
import { joinPem } from '../../../src/identity/pem.js';
import { formatSpiffeId, type SpiffeId } from '../../../src/identity/spiffe.js';
import { podTunnels } from '../../../src/tunnel/native-pod-proxy.js';
import { CLIENT, SERVER, holdOpen, nativeFixture, roundTrip, withLoopback, type LoopbackDataplane } from '../../helpers/native-dataplane.js';
import { issueWorkloadCert } from '../../helpers/workload-certs.js';

// Certificate renewal on the native data path (docs/architecture.md §12): new connections
// get the new certificate, live ones keep theirs, and only a new trust bundle re-verifies
// live sessions. Found as one reset in ~500 requests in the reliability suite, whose
// certificates live 30 s: the client kept pooling the session of its old certificate, and
// the server's next renewal cut that session, with the requests in flight, once it expired.

const fx = nativeFixture();

/** Loads a new certificate of `id` (valid `ttlMs`) with these roots; returns once every worker has taken it. */
async function renew(h: LoopbackDataplane, id: SpiffeId, roots = [fx.rootPem], ttlMs?: number): Promise<X509Certificate> {
  const c = await issueWorkloadCert(fx.ca, id, ttlMs);
  h.dp.setIdentity(formatSpiffeId(id), c.privateKeyPem, joinPem(c.chainPem), roots);
  // a listing waits for every worker, which ran the renewal posted before it
  h.dp.pools();
  return new X509Certificate(c.chainPem[0]!);
}

/** What the held connection echoes of `text`: 'closed' when it ended instead, 'silent' after 3 s. */
function echoes(s: Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('silent'), 3000);
    s.once('data', (d: Buffer) => (clearTimeout(timer), resolve(d.toString())));
    s.once('close', () => (clearTimeout(timer), resolve('closed')));
    s.on('error', () => undefined);
    s.write(text);
  });
}

/** the client pod's HBONE connections to the server identity and their open streams, as `/connections` lists them */
const tunnels = (connections: number, streams: number) => [{ key: `${formatSpiffeId(SERVER)}|127.0.0.1`, connections, streams }];

test('a renewed client certificate: new connections handshake a new HBONE session, streams on the old one carry on, and it closes once they end', async () => {
  await withLoopback(
    fx,
    async (h) => {
      const held = await holdOpen(h.outboundPort, 2);
      try {
        assert.equal(h.sessions.size, 1, 'one session carries both');
        await renew(h, CLIENT);
        assert.equal((await roundTrip(h.outboundPort, Buffer.from('after'))).toString(), 'after');
        assert.equal(h.sessions.size, 2, 'the connection after the renewal handshook a new session');
        assert.deepEqual(podTunnels(h.dp.pools(), ''), tunnels(2, 2), 'the old session is still listed with its streams');
        assert.equal(await echoes(held[0]!, 'still here'), 'still here', 'a stream of the old session carries on');
        assert.equal(h.sessionsClosed.size, 0);
      } finally {
        for (const s of held) s.destroy();
      }
      await h.until(() => h.sessionsClosed.size === 1, 'the old session closed once its streams ended', 5000);
      assert.deepEqual(podTunnels(h.dp.pools(), ''), tunnels(1, 0), 'the new session stays pooled');
      assert.equal((await roundTrip(h.outboundPort, Buffer.from('again'))).toString(), 'again');
      assert.equal(h.sessions.size, 2, 'and takes the next connection');
    },
    { threads: 1 },
  );
});

test('a peer certificate that expired after its handshake: the server’s renewal does not cut its session; a new trust bundle does', async () => {
  await withLoopback(
    fx,
    async (h) => {
      const leaf = await renew(h, CLIENT, [fx.rootPem], 2000);
      const [held] = await holdOpen(h.outboundPort, 1);
      try {
        await sleep(Date.parse(leaf.validTo) + 1100 - Date.now());
        assert.ok(Date.now() > Date.parse(leaf.validTo), 'the client certificate of the session has expired');
        await renew(h, SERVER);
        await sleep(300);
        assert.equal(await echoes(held!, 'still here'), 'still here', 'the stream carries on after the server’s renewal');
        assert.equal(h.sessionsClosed.size, 0, 'no session was cut');

        const other = await createRootCa('cluster.local');
        await renew(h, SERVER, [fx.rootPem, other.certPem]);
        await h.until(() => h.sessionsClosed.size === 1, 'the session cut when the bundle changed', 3000);
        assert.equal([...h.sessionsClosed.values()][0]!.refusal, 'trust-revoked', 'its expired peer chain no longer verifies');
      } finally {
        held!.destroy();
      }
    },
    { threads: 1 },
  );
});
