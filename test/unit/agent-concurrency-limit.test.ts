import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { concurrencyLimit } from '../../src/agent/concurrency-limit.js';

test('concurrencyLimit runs at most `limit` tasks at once, all of them, in arrival order, failures included', async () => {
  const limited = concurrencyLimit(3);
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) =>
      limited(async () => {
        started.push(i);
        running++;
        peak = Math.max(peak, running);
        await sleep(i % 4);
        running--;
        if (i === 5) throw new Error('task 5 fails');
        return i;
      }),
    ),
  );
  assert.equal(peak, 3);
  assert.deepEqual(started, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(results[5]!.status, 'rejected', 'a failure frees its slot like a success');
  assert.deepEqual(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<number>).value).length, 19);
  // the limiter is idle again: a new task starts at once
  let ranAlone = false;
  await limited(async () => void (ranAlone = running === 0));
  assert.ok(ranAlone);
});
