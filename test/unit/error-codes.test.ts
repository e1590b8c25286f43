import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/errors/error-codes.js';
import { httpStatusForError } from '../../src/errors/http-status.js';
import { WarrenError } from '../../src/errors/warren-error.js';

const SRC = new URL('../../../src/', import.meta.url).pathname;
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [readFileSync(join(dir, e.name), 'utf8')] : []));

test('every listed error code is raised somewhere, once listed (no dead codes, no duplicates)', () => {
  const text = sources(SRC).filter((t) => !t.includes('export const ERROR_CODES')).join('\n');
  assert.deepEqual(ERROR_CODES.filter((c) => !text.includes(`'${c}'`)), []);
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
});

test('one mapping to HTTP: the caller\'s mistakes are 4xx, retryable failures 503, the rest 500', () => {
  assert.equal(httpStatusForError(new WarrenError('ERR_EXPLAIN_QUERY', 'bad from')), 400);
  assert.equal(httpStatusForError(new WarrenError('ERR_EXPLAIN_NOT_FOUND', 'no pod')), 404);
  assert.equal(httpStatusForError(new WarrenError('ERR_AGENT_NOT_SYNCED', 'wait', { retryable: true })), 503);
  assert.equal(httpStatusForError(new WarrenError('ERR_CNI_POD_NODE', 'other node')), 500);
  assert.equal(httpStatusForError(new Error('plain')), 500);
});
