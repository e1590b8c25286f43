import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { cHeapStats, trimHeap } from '../../../src/native/c-heap.js';

const rssMiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

test('the C heap: its figures tell held blocks from free ones, and trimHeap gives the free pages between live blocks back to the kernel', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // 64 MiB of 16 KiB backing stores (malloc'd: below glibc's mmap threshold), every other one
  // dropped: 32 MiB of holes amid live blocks, which glibc keeps unless trimmed.
  let blocks: ArrayBuffer[] = [];
  for (let i = 0; i < 4096; i++) {
    const b = new ArrayBuffer(16 * 1024);
    new Uint8Array(b).fill(1);
    blocks.push(b);
  }
  blocks = blocks.filter((_, i) => i % 2 === 0);
  // backing stores are freed by V8's sweeper after the collection, off this thread
  gc();
  await sleep(200);
  gc();
  await sleep(200);
  const before = rssMiB();
  const stats = cHeapStats();
  assert.ok(stats.freeBytes >= 32 * 2 ** 20, `the C heap counts the 32 MiB of holes as free: ${JSON.stringify(stats)}`);
  assert.ok(stats.inUseBytes >= 32 * 2 ** 20, `and the 32 MiB still held as in use: ${JSON.stringify(stats)}`);
  assert.equal(trimHeap(), true, 'some memory was released');
  const after = rssMiB();
  assert.ok(Math.abs(cHeapStats().inUseBytes - stats.inUseBytes) < 4 * 2 ** 20, 'a trim frees nothing that is in use');
  assert.ok(before - after >= 16, `RSS ${before.toFixed(1)} → ${after.toFixed(1)} MiB: at least half of the 32 MiB of holes released`);
  assert.equal(blocks.length, 2048);
  assert.ok(blocks.every((b) => new Uint8Array(b)[100] === 1), 'the live blocks are untouched');
});
