import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { boundCHeapRetention, cHeapStats } from '../../../src/native/c-heap.js';

// Its own file, so its own process: the threshold holds for the life of the process.
test('boundCHeapRetention fixes glibc’s thresholds: a large block freed no longer lifts them, so later large blocks are still mapped and unmapped on their own instead of kept in an arena', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const collect = async (): Promise<void> => {
    // backing stores are freed by V8's sweeper after the collection, off this thread
    for (let i = 0; i < 2; i++) {
      gc();
      await sleep(200);
    }
  };
  assert.equal(boundCHeapRetention(), true);
  // Left dynamic, freeing this mmapped 24 MiB block lifts the mmap threshold to 24 MiB and the
  // trim threshold to 48 MiB: every arena may then keep up to 48 MiB free at its end.
  let big: ArrayBuffer | undefined = new ArrayBuffer(24 * 2 ** 20);
  new Uint8Array(big).fill(1);
  big = undefined;
  await collect();
  const before = cHeapStats().mmappedBytes;
  const mid = new ArrayBuffer(2 * 2 ** 20);
  new Uint8Array(mid).fill(1);
  const after = cHeapStats().mmappedBytes;
  assert.ok(after - before >= 2 * 2 ** 20, `a 2 MiB block is mapped on its own (mmapped ${before} → ${after} bytes): the thresholds did not rise`);
  assert.equal(new Uint8Array(mid)[0], 1);
});
