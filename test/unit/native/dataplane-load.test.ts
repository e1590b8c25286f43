import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { test } from 'node:test';
import { nativeFixture, withLoopback } from '../../helpers/native-dataplane.js';

// Many streams with large transfers at once through one pooled HBONE session:
// every byte must arrive in order (sha256 at the receiver), no session may fail.
// Bounded: LOAD_STREAMS × LOAD_MIB each way (default 16 × 8 MiB).

const STREAMS = Number(process.env.LOAD_STREAMS ?? 16);
const MIB = Number(process.env.LOAD_MIB ?? 8);

const fx = nativeFixture();

/** Streams `size` random bytes in 64 KiB writes (backpressure honoured), half-closes, hashes what comes back. */
function pump(port: number, size: number): Promise<{ sent: string; received: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const out = createHash('sha256');
    const back = createHash('sha256');
    let bytes = 0;
    let left = size;
    s.on('data', (c: Buffer) => {
      back.update(c);
      bytes += c.length;
    });
    s.once('end', () => {
      s.end();
      resolve({ sent: out.digest('hex'), received: back.digest('hex'), bytes });
    });
    s.once('error', reject);
    const write = (): void => {
      while (left > 0) {
        const chunk = randomBytes(Math.min(left, 65536));
        left -= chunk.length;
        out.update(chunk);
        if (!s.write(chunk)) return void s.once('drain', write);
      }
      s.end();
    };
    s.once('connect', write);
  });
}

test(`${STREAMS} streams × ${MIB} MiB each way at once over pooled HBONE arrive byte-exact, no session fails`, { timeout: 300_000 }, async () => {
  await withLoopback(
    fx,
    async (h) => {
      const settled = await Promise.allSettled(Array.from({ length: STREAMS }, () => pump(h.outboundPort, MIB * 1024 * 1024)));
      await h.until(() => h.closed.size === 2 * STREAMS, 'every flow closed', 60_000);
      const errors = [...new Set([...h.closed.values()].map((c) => c.error).filter((e) => e !== undefined))];
      assert.deepEqual(errors, [], 'no flow ended with an error');
      for (const r of settled) {
        assert.equal(r.status, 'fulfilled', 'every client got its bytes back and a clean end');
        if (r.status !== 'fulfilled') continue;
        assert.equal(r.value.bytes, MIB * 1024 * 1024);
        assert.equal(r.value.received, r.value.sent);
      }
    },
    { threads: 2 },
  );
});
