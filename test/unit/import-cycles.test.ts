import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { importCycles, importGraph } from '../helpers/source-imports.js';

// No module of src/ imports itself through others (docs/architecture.md §9): every
// import, type-only ones included, so the layering stays a tree of concerns.
const ROOT = new URL('../../../', import.meta.url).pathname;

test('the cycle finder sees a cycle through several files and a file importing itself', () => {
  const graph = new Map([
    ['a', ['b']],
    ['b', ['c', 'x']],
    ['c', ['a']],
    ['d', ['d']],
    ['e', ['a']],
  ]);
  assert.deepEqual(importCycles(graph), [['a', 'b', 'c', 'a'], ['d', 'd']]);
  assert.deepEqual(importCycles(new Map([['a', ['b']], ['b', []]])), []);
});

test('src/ has no import cycles', () => {
  const cycles = importCycles(importGraph(join(ROOT, 'src'))).map((c) => c.map((f) => relative(ROOT, f)).join(' → '));
  assert.deepEqual(cycles, [], 'move what both sides need into a module of its own');
});
