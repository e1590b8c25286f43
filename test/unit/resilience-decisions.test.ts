import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admission, newCounters, retryAllowed } from '../../src/resilience/circuit-breaker.js';
import type { ConnectionPool, OutlierPolicy } from '../../src/resilience/destination-rule.js';
import { faultAction, selectHttpRule } from '../../src/resilience/fault-decision.js';
import { pickEndpoint, type PickContext } from '../../src/resilience/load-balancer.js';
import { healthyEndpoints, isEjected, recordResult, sweep, type OutlierState } from '../../src/resilience/outlier-detection.js';
import { newBucket, takeToken } from '../../src/resilience/token-bucket.js';
import { createUpstreamCluster } from '../../src/resilience/upstream-cluster.js';
import { parseVirtualService } from '../../src/resilience/virtual-service.js';

test('token bucket: burst requests pass at once, then the refill rate; x-ratelimit-* inputs are right', () => {
  const limits = { ratePerSecond: 10, burst: 5 };
  const b = newBucket(limits, 0);
  const first = Array.from({ length: 7 }, () => takeToken(b, limits, 0));
  assert.deepEqual(first.map((r) => r.allowed), [true, true, true, true, true, false, false]);
  assert.equal(first[4]?.remaining, 0);
  assert.equal(first[5]?.resetSeconds, 1);
  assert.equal(takeToken(b, limits, 99).allowed, false, 'less than one token after 99 ms at 10/s');
  assert.equal(takeToken(b, limits, 100).allowed, true, 'one token after 100 ms');
  // 20 rps for 10 s against 10/s + burst 5: 105 pass
  const c = newBucket(limits, 0);
  let passed = 0;
  for (let t = 0; t < 10_000; t += 50) if (takeToken(c, limits, t).allowed) passed++;
  assert.ok(passed >= 104 && passed <= 105, `passed ${passed}`);
  assert.equal(takeToken(c, limits, 1_000_000).remaining, 4, 'never more than burst');
});

const pool = (o: Partial<ConnectionPool>): ConnectionPool => ({ maxConnections: 1e9, http1MaxPendingRequests: 1e9, http2MaxRequests: 1e9, maxRequestsPerConnection: 0, maxRetries: 1e9, ...o });

test('circuit breaker: maxConnections runs, http1MaxPendingRequests waits, the rest overflows', () => {
  const p = pool({ maxConnections: 1, http1MaxPendingRequests: 1 });
  const c = newCounters();
  assert.equal(admission(c, p), 'run');
  c.active = 1;
  assert.equal(admission(c, p), 'queue');
  c.pending = 1;
  assert.equal(admission(c, p), 'overflow');
  assert.equal(admission({ active: 2, pending: 0, retries: 0 }, pool({ http2MaxRequests: 2, http1MaxPendingRequests: 1 })), 'queue', 'http2MaxRequests bounds active requests too');
  assert.equal(retryAllowed({ active: 0, pending: 0, retries: 1 }, pool({ maxRetries: 1 })), false);
  assert.equal(retryAllowed({ active: 0, pending: 0, retries: 0 }, pool({ maxRetries: 1 })), true);
});

const od = (o: Partial<OutlierPolicy>): OutlierPolicy => ({ consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100, minHealthPercent: 0, ...o });
const eps = [{ ip: '10.0.0.1', port: 80 }, { ip: '10.0.0.2', port: 80 }, { ip: '10.0.0.3', port: 80 }];

test('outlier detection: consecutive 5xx eject for baseEjectionTime × ejections; a success resets the count', () => {
  const s: OutlierState = new Map();
  const p = od({ consecutive5xxErrors: 2 });
  const bad = eps[0]!;
  assert.equal(recordResult(s, p, eps, bad, { status: 500 }, 0), false);
  assert.equal(recordResult(s, p, eps, bad, { status: 200 }, 1), false);
  assert.equal(recordResult(s, p, eps, bad, { status: 500 }, 2), false, 'the 200 reset the count');
  assert.equal(recordResult(s, p, eps, bad, { status: 503 }, 3), true);
  assert.deepEqual(healthyEndpoints(s, p, eps, 4), [eps[1], eps[2]]);
  assert.equal(isEjected(s, bad, 30_002), true);
  assert.equal(isEjected(s, bad, 30_003), false, 'back after baseEjectionTime');
  assert.equal(recordResult(s, p, eps, bad, { status: 500 }, 30_010), false);
  assert.equal(recordResult(s, p, eps, bad, { status: 500 }, 30_011), true);
  assert.equal(isEjected(s, bad, 30_011 + 59_999), true, 'second ejection lasts twice as long');
  sweep(s, new Set(['10.0.0.2:80']), 200_000);
  assert.equal(s.has('10.0.0.1:80'), false, 'state of endpoints that left is dropped');
});

test('outlier detection: gateway errors, maxEjectionPercent (one at least), minHealthPercent panic', () => {
  const s: OutlierState = new Map();
  const p = od({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 1, maxEjectionPercent: 10 });
  assert.equal(recordResult(s, p, eps, eps[0]!, { status: 500 }, 0), false, '500 is not a gateway error');
  assert.equal(recordResult(s, p, eps, eps[0]!, { failure: 'connect' }, 0), true, '10 % of 3 still ejects one');
  assert.equal(recordResult(s, p, eps, eps[1]!, { status: 502 }, 0), false, 'a second one would exceed 10 %');
  const panic = od({ minHealthPercent: 80 });
  assert.deepEqual(healthyEndpoints(s, panic, eps, 1), eps, 'below minHealthPercent every endpoint is used');
  const all: OutlierState = new Map(eps.map((e) => [`${e.ip}:${e.port}`, { consecutive5xx: 0, consecutiveGateway: 0, ejections: 1, ejectedUntilMs: 10 }]));
  assert.deepEqual(healthyEndpoints(all, p, eps, 1), eps, 'all ejected: all used');
});

const ctx = (o: Partial<PickContext> = {}): PickContext => ({ cursor: 0, random: Math.random, active: () => 0, header: () => undefined, ...o });

test('load balancing: round robin walks the list, least request prefers the idle of two, consistent hash is sticky', () => {
  assert.deepEqual([0, 1, 2, 3].map((cursor) => pickEndpoint(eps, undefined, ctx({ cursor }))?.ip), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1']);
  const busy = (e: { ip: string }) => (e.ip === '10.0.0.1' ? 10 : 0);
  const rolls = [0, 0];
  let i = 0;
  assert.equal(pickEndpoint(eps, { simple: 'LEAST_REQUEST' }, ctx({ active: busy, random: () => rolls[i++ % 2]! }))?.ip, '10.0.0.3', 'of 10.0.0.1 (busy) and another, the other');
  assert.equal(pickEndpoint(eps, { simple: 'RANDOM' }, ctx({ random: () => 0.99 }))?.ip, '10.0.0.3');
  const lb = { consistentHashHeader: 'x-user' };
  const users = Array.from({ length: 30 }, (_, n) => `user-${n}`);
  const first = users.map((u) => pickEndpoint(eps, lb, ctx({ header: () => u, cursor: 7 }))?.ip);
  assert.deepEqual(users.map((u) => pickEndpoint(eps, lb, ctx({ header: () => u, cursor: 1 }))?.ip), first, 'the same user, the same endpoint');
  assert.equal(new Set(first).size, 3, 'users spread over every endpoint');
  const without = users.map((u) => pickEndpoint(eps.slice(1), lb, ctx({ header: () => u }))?.ip);
  users.forEach((_, n) => first[n] !== '10.0.0.1' && assert.equal(without[n], first[n], 'only the removed endpoint\'s users move'));
});

test('fault decision: header match selects the rule; each fault rolls its percentage', () => {
  const vs = parseVirtualService({
    metadata: { name: 'r', namespace: 'd' },
    spec: {
      hosts: ['ratings'],
      http: [
        { match: [{ headers: { 'end-user': { exact: 'jason' } } }], fault: { delay: { fixedDelay: '7s' } }, route: [{ destination: { host: 'ratings' } }] },
        { fault: { abort: { httpStatus: 500, percentage: { value: 50 } } }, route: [{ destination: { host: 'ratings' } }] },
      ],
    },
  });
  const jason = selectHttpRule(vs.http, (n) => (n === 'end-user' ? 'jason' : undefined));
  const other = selectHttpRule(vs.http, (n) => (n === 'end-user' ? 'json' : undefined));
  assert.deepEqual(faultAction(jason?.fault, () => 0.999), { delayMs: 7000 });
  assert.deepEqual(faultAction(other?.fault, () => 0.49), { abort: { httpStatus: 500 } });
  assert.deepEqual(faultAction(other?.fault, () => 0.5), {});
  let seed = 1;
  const lcg = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const aborted = Array.from({ length: 1000 }, () => faultAction(other?.fault, lcg)).filter((a) => a.abort).length;
  assert.ok(aborted >= 450 && aborted <= 550, `aborted ${aborted} of 1000`);
});

test('upstream cluster: a released slot goes to the oldest waiter, never to a newcomer as well', async () => {
  const clock = { now: () => 0, random: () => 0, onEject: () => undefined };
  const c = createUpstreamCluster('k', { connectionPool: pool({ maxConnections: 1, http1MaxPendingRequests: 1 }) }, clock);
  const a = await c.admit();
  assert.ok(a);
  const b = c.admit();
  assert.equal(await c.admit(), undefined, 'one waiting: the third overflows');
  a.release();
  a.release();
  // between the release and the waiter running, a newcomer must wait, not run beside it
  let dRan = false;
  const d = c.admit().then((l) => ((dRan = true), l));
  const lease = await b;
  assert.ok(lease, 'the waiter got the slot');
  assert.equal(dRan, false, 'the newcomer waits');
  assert.equal(await c.admit(), undefined, 'one running, one waiting: overflow');
  lease.release();
  assert.ok(await d, 'then it gets the slot');
});
