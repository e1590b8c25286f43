import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

// dist/test/helpers → the source tree's test/golden
const GOLDEN_DIR = new URL('../../../test/golden/', import.meta.url).pathname;

/**
 * Compares `actual` with test/golden/<name>. UPDATE_GOLDEN=1 rewrites the
 * file instead (review the diff before committing).
 */
export function assertGolden(name: string, actual: string): void {
  const path = GOLDEN_DIR + name;
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  if (!existsSync(path)) {
    assert.fail(`golden file test/golden/${name} is missing; create it with UPDATE_GOLDEN=1 npm run test:unit and review it`);
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `output differs from test/golden/${name} (UPDATE_GOLDEN=1 to accept)`);
}
