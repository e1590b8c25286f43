import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { trimHeap } from '../../../src/native/heap-trim.js';

const rssMiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

test('trimHeap gives the free pages between live C-heap blocks back to the kernel', async () => {
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
  assert.equal(trimHeap(), true, 'some memory was released');
  const after = rssMiB();
  assert.ok(before - after >= 16, `RSS ${before.toFixed(1)} → ${after.toFixed(1)} MiB: at least half of the 32 MiB of holes released`);
  assert.equal(blocks.length, 2048);
  assert.ok(blocks.every((b) => new Uint8Array(b)[100] === 1), 'the live blocks are untouched');
});
