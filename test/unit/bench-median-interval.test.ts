import assert from 'node:assert/strict';
import test from 'node:test';
import { medianInterval } from '../../bench/median-interval.js';

const shuffled = (n: number): number[] => Array.from({ length: n }, (_, i) => ((i * 7) % n) + 1);

test('the median interval is the order statistics whose binomial coverage reaches the level', () => {
  // 10 values: the 2nd smallest to the 2nd largest (1 − 2·11/1024 = 97.9 %; the 3rd would be 89.1 %)
  const ten = medianInterval(shuffled(10));
  assert.deepEqual({ low: ten?.low, high: ten?.high }, { low: 2, high: 9 });
  assert.ok(Math.abs(ten!.coverage - (1 - 22 / 1024)) < 1e-12);
  // 20 values: the 6th to the 15th (95.9 %)
  const twenty = medianInterval(shuffled(20));
  assert.deepEqual({ low: twenty?.low, high: twenty?.high }, { low: 6, high: 15 });
  assert.ok(twenty!.coverage >= 0.95 && twenty!.coverage < 0.96);
  // a lower level narrows it: the 7th to the 14th (88.5 %)
  const lower = medianInterval(shuffled(20), 0.85);
  assert.deepEqual({ low: lower?.low, high: lower?.high }, { low: 7, high: 14 });
});

test('too few values bound no median, and values that are not numbers are left out', () => {
  assert.equal(medianInterval([1, 2, 3, 4, 5]), undefined, '5 values: at best 93.75 %');
  const six = medianInterval([6, 1, 5, 2, 4, 3]);
  assert.deepEqual({ low: six?.low, high: six?.high }, { low: 1, high: 6 });
  assert.equal(medianInterval([1, 2, 3, 4, 5, NaN, Infinity]), undefined, 'NaN and Infinity are not rounds');
  assert.throws(() => medianInterval([1, 2, 3], 1), /level: a probability/);
});
