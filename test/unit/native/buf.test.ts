import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

// The native data path's byte queue (src/native/dataplane/buf.h) under a flow's
// pattern: reads up to the 256 KiB pending bound, partial takes. What a node relies on:
// a connection's queue holds at most twice the bytes it must (it reached ~3.9× before
// compaction was decided by the bytes needed), moves each byte at most once on average,
// and hands every byte on in order.

const CHECK = fileURLToPath(new URL('../../../../test/native/buf-check.cc', import.meta.url));

test('a queue driven to its pending bound with partial takes holds at most twice what it must, moves each byte ≤ once on average, keeps order', async () => {
  const dir = await mkdtemp(`${tmpdir()}/warren-buf-`);
  try {
    await execa('g++', ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', '-o', `${dir}/buf-check`, CHECK]);
    const { stdout } = await execa(`${dir}/buf-check`, ['1000000']);
    const r = JSON.parse(stdout) as { maxNeed: number; maxCap: number; worstRatio: number; moved: number; through: number; ordered: boolean };
    assert.equal(r.ordered, true, 'every byte out in order');
    assert.equal(r.maxNeed, 256 * 1024, 'the pattern reached the pending bound');
    assert.ok(r.worstRatio <= 2, `storage ${r.maxCap} B for at most ${r.maxNeed} B held (${r.worstRatio}×)`);
    assert.ok(r.moved <= r.through, `moved ${r.moved} B inside the storage for ${r.through} B through`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
