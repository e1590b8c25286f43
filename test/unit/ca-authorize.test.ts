import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NODE_NAME_EXTRA, decideSigning } from '../../src/ca/authorize.js';

const agent = 'system:serviceaccount:warren-system:warren-node';
const base = {
  allowedCallers: [agent],
  trustDomain: 'cluster.local',
  requested: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' },
  podsOnNode: (node: string) => (node === 'node-1' ? [{ namespace: 'shop', serviceAccount: 'web' }] : [{ namespace: 'shop', serviceAccount: 'db' }]),
};
const review = (node?: string, username = agent) => ({ authenticated: true, username, extra: node === undefined ? {} : { [NODE_NAME_EXTRA]: [node] } });

test('the node agent gets identities of pods on its own node', () => {
  assert.deepEqual(decideSigning({ ...base, review: review('node-1') }), { allow: true, node: 'node-1' });
});

test('an identity whose pods run elsewhere is 403, a bad token 401, a wrong caller 403', () => {
  assert.deepEqual(decideSigning({ ...base, review: review('node-2') }).allow, false);
  assert.equal((decideSigning({ ...base, review: review('node-2') }) as { status: number }).status, 403);
  assert.equal((decideSigning({ ...base, review: { authenticated: false } }) as { status: number }).status, 401);
  assert.equal((decideSigning({ ...base, review: review('node-1', 'system:serviceaccount:shop:web') }) as { status: number }).status, 403);
  assert.equal((decideSigning({ ...base, review: review(undefined) }) as { status: number }).status, 403, 'unbound tokens name no node');
  assert.equal((decideSigning({ ...base, review: review('node-1'), requested: { ...base.requested, trustDomain: 'evil.example' } }) as { status: number }).status, 403);
});
