import assert from 'node:assert/strict';
import test from 'node:test';
import { rotated } from '../../bench/dataplane.js';

/** how often each path is measured in each position, and right after each other path, over `rounds` rounds */
function tally(paths: string[], rounds: number): { positions: Map<string, number>; follows: Map<string, number> } {
  const positions = new Map<string, number>();
  const follows = new Map<string, number>();
  const add = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);
  for (let r = 0; r < rounds; r++) {
    const order = rotated(paths, r);
    assert.deepEqual([...order].sort(), [...paths].sort(), `round ${r} measures every path once`);
    order.forEach((p, i) => {
      add(positions, `${p}@${i}`);
      if (i > 0) add(follows, `${order[i - 1]}→${p}`);
    });
  }
  return { positions, follows };
}

test('the data-plane benchmark varies its path order: each path measured in each position, and right after each other path, equally often', () => {
  for (const paths of [
    ['direct', 'stunnel', 'stunnel-captured', 'native'],
    ['direct', 'stunnel', 'stunnel-captured', 'node-tls', 'warren', 'native', 'warren-nopool', 'warren-real'],
    ['direct', 'stunnel', 'stunnel-captured', 'node-tls', 'warren', 'native', 'warren-nopool', 'warren-real', 'before'],
  ]) {
    const n = paths.length;
    const rounds = n % 2 === 0 ? n : 2 * n;
    const { positions, follows } = tally(paths, rounds);
    assert.deepEqual(new Set(positions.values()), new Set([rounds / n]), `${n} paths: positions ${JSON.stringify([...positions])}`);
    assert.equal(follows.size, n * (n - 1), `${n} paths: every ordered pair of paths occurs`);
    assert.deepEqual(new Set(follows.values()), new Set([rounds / n]), `${n} paths: ${JSON.stringify([...follows])}`);
  }
  assert.deepEqual(rotated([], 3), []);
  assert.deepEqual(rotated(['direct'], 5), ['direct']);
});
