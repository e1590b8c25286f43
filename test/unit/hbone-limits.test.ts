import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_HBONE_LIMITS, HboneGuard, admitConnection } from '../../src/tunnel/hbone-limits.js';

const limits = { ...DEFAULT_HBONE_LIMITS, maxConnectionsPerPeer: 2, maxConnections: 3 };

test('admitConnection: the per-peer bound first, then the node total', () => {
  assert.equal(admitConnection({ total: 0, fromPeer: 0 }, limits), undefined);
  assert.equal(admitConnection({ total: 2, fromPeer: 1 }, limits), undefined);
  assert.equal(admitConnection({ total: 2, fromPeer: 2 }, limits), 'peer-connections');
  assert.equal(admitConnection({ total: 3, fromPeer: 0 }, limits), 'total-connections');
});

test('HboneGuard counts per peer and in total; a release frees one slot, once', () => {
  const guard = new HboneGuard(limits);
  const a1 = guard.admit('10.0.0.1');
  const a2 = guard.admit('10.0.0.1');
  assert.equal(typeof a1, 'function');
  assert.equal(guard.admit('10.0.0.1'), 'peer-connections');
  const b1 = guard.admit('10.0.0.2');
  assert.equal(guard.admit('10.0.0.3'), 'total-connections');
  assert.equal(guard.connections(), 3);
  (a1 as () => void)();
  (a1 as () => void)();
  assert.equal(guard.connections(), 2);
  assert.equal(typeof guard.admit('10.0.0.1'), 'function', 'the peer has a slot again');
  assert.equal(guard.admit('10.0.0.3'), 'total-connections');
  (a2 as () => void)();
  (b1 as () => void)();
  assert.equal(guard.connections(), 1);
});
