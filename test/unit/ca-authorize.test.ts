import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NODE_NAME_EXTRA, decideSigning, precheckToken } from '../../src/ca/authorize.js';
import { CallerLimiter } from '../../src/ca/caller-limits.js';

const agent = 'system:serviceaccount:warren-system:warren-node';
const base = {
  allowedCallers: [agent],
  audience: 'warren-ca',
  trustDomain: 'cluster.local',
  requested: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' },
  podsOnNode: (node: string) => (node === 'node-1' ? [{ namespace: 'shop', serviceAccount: 'web' }] : [{ namespace: 'shop', serviceAccount: 'db' }]),
};
const review = (node?: string, username = agent, audiences = ['warren-ca']) => ({ authenticated: true, username, audiences, extra: node === undefined ? {} : { [NODE_NAME_EXTRA]: [node] } });

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

test('a token the API server did not confirm for the CA audience is 401, whatever else it says', () => {
  for (const audiences of [[], ['https://kubernetes.default.svc.cluster.local']]) {
    const d = decideSigning({ ...base, review: review('node-1', agent, audiences) });
    assert.deepEqual(d, { allow: false, status: 401, reason: 'the bearer token is not for audience warren-ca' });
  }
});

const jwt = (claims: object): string => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

test('tokens that cannot pass TokenReview are refused before it: not a JWT, too long, expired, another audience', () => {
  const now = 1_800_000_000_000;
  const exp = now / 1000 + 600;
  assert.equal(precheckToken(jwt({ aud: ['warren-ca'], exp }), 'warren-ca', now), undefined);
  assert.equal(precheckToken(jwt({ aud: 'warren-ca', exp }), 'warren-ca', now), undefined);
  assert.match(precheckToken(jwt({ aud: ['https://kubernetes.default.svc.cluster.local'], exp }), 'warren-ca', now)!, /not for audience warren-ca/);
  assert.match(precheckToken(jwt({ aud: ['warren-ca'], exp: now / 1000 - 1 }), 'warren-ca', now)!, /expired/);
  assert.match(precheckToken(jwt({ exp }), 'warren-ca', now)!, /not a JWT/);
  for (const bad of ['opaque-token', 'a.b', 'a.b.c.d', 'a.%%%.c', `x.${Buffer.from('not json').toString('base64url')}.y`]) assert.match(precheckToken(bad, 'warren-ca', now)!, /not a JWT/, bad);
  assert.match(precheckToken(`${jwt({ aud: ['warren-ca'], exp })}${'A'.repeat(9000)}`, 'warren-ca', now)!, /too long/);
});

test('per-caller limits: a burst, then the sustained rate; requests in flight capped; callers independent', () => {
  let t = 0;
  const limiter = new CallerLimiter({ ratePerSecond: 10, burst: 5, concurrent: 3 }, () => t);
  const held = [1, 2, 3].map(() => limiter.admit('10.0.0.1'));
  assert.ok(held.every((a) => a.admitted));
  assert.deepEqual(limiter.admit('10.0.0.1'), { admitted: false, reason: 'concurrency', retryAfterSeconds: 1 });
  assert.equal(limiter.admit('10.0.0.2').admitted, true, 'another caller is not affected');
  for (const a of held) if (a.admitted) (a.release(), a.release()); // a second release is a no-op
  for (let i = 0; i < 2; i++) {
    const a = limiter.admit('10.0.0.1');
    assert.ok(a.admitted);
    a.release();
  }
  const over = limiter.admit('10.0.0.1');
  assert.equal(over.admitted, false);
  assert.equal(!over.admitted && over.reason, 'rate');
  t += 100; // one token back at 10/s
  const again = limiter.admit('10.0.0.1');
  assert.ok(again.admitted);
  again.release();
  assert.equal(limiter.admit('10.0.0.1').admitted, false);
});
