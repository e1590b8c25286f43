import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PodView, Unenrollment } from '../../src/agent/enrollment-plan.js';
import { Reconciler, type ReconcilerDeps } from '../../src/agent/reconciler.js';
import { WarrenError } from '../../src/errors/warren-error.js';

const pod = (name: string, over: Partial<PodView> = {}): PodView => ({ uid: `uid-${name}`, namespace: 'shop', name, ips: ['10.244.1.9'], labels: {}, hostNetwork: false, serviceAccount: 'default', phase: 'Running', ...over });
const ambient = new Map([['shop', { 'warren.io/dataplane-mode': 'ambient' }]]);

/** An enrollment manager as a map of UID → labels; `failures` makes the next N enrollments of a pod fail. */
function fakes(pods: PodView[], failures = new Map<string, number>(), error: (p: PodView) => Error = () => new Error('netns not found yet')) {
  const enrolled = new Map<string, Record<string, string>>();
  const calls: string[] = [];
  const deps: ReconcilerDeps = {
    pods: () => pods,
    namespaceLabels: () => ambient,
    policy: { excludedNamespaces: new Set(['kube-system']) },
    enrolled: () => enrolled,
    enroll: async (p) => {
      calls.push(`enroll ${p.name}`);
      const left = failures.get(p.uid) ?? 0;
      if (left > 0) {
        failures.set(p.uid, left - 1);
        throw error(p);
      }
      enrolled.set(p.uid, p.labels);
    },
    relabel: (uid, labels) => (calls.push(`relabel ${uid}`), enrolled.set(uid, labels), 2),
    unenroll: async (u: Unenrollment) => void (calls.push(`unenroll ${u.uid} gone=${u.podGone}`), enrolled.delete(u.uid)),
    log: (msg, fields) => void calls.push(`log ${msg} ${JSON.stringify(fields)}`),
    coalesceMs: 5,
    retryMs: 30,
  };
  return { deps, enrolled, calls };
}

test('nothing is enrolled before the initial sync, however many informer events arrive', async (t) => {
  // Mocked timers: the coalesced pass has certainly run (and done nothing), not merely had 20 ms to.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const f = fakes([pod('a')]);
  const r = new Reconciler(f.deps);
  r.soon();
  r.pass();
  t.mock.timers.tick(1000);
  assert.equal(r.synced(), false);
  assert.deepEqual(f.calls, []);
  r.markSynced();
  assert.equal(r.synced(), true);
  assert.deepEqual(f.calls, ['enroll a']);
  r.stop();
});

test('a burst of informer events becomes one pass', async () => {
  const pods = [pod('a')];
  const f = fakes(pods);
  const r = new Reconciler(f.deps);
  r.markSynced();
  await sleep(0);
  pods.push(pod('b'), pod('c'));
  for (let i = 0; i < 50; i++) r.soon();
  for (let i = 0; i < 100 && !f.calls.includes('enroll c'); i++) await sleep(10);
  assert.deepEqual(f.calls, ['enroll a', 'enroll b', 'enroll c']);
  r.stop();
});

test('a failed enrollment is retried later, not forgotten', async () => {
  const f = fakes([pod('a')], new Map([['uid-a', 2]]));
  const r = new Reconciler(f.deps);
  r.markSynced();
  for (let i = 0; i < 100 && !f.enrolled.has('uid-a'); i++) await sleep(10);
  assert.deepEqual(f.calls, ['enroll a', 'enroll a', 'enroll a']);
  r.stop();
});

test('relabels and unenrollments are carried out, and closed connections logged', async () => {
  const f = fakes([pod('a', { labels: { tier: 'web' } })]);
  f.enrolled.set('uid-a', {});
  f.enrolled.set('uid-gone', {});
  const r = new Reconciler(f.deps);
  r.markSynced();
  await sleep(0);
  assert.deepEqual(f.calls, ['relabel uid-a', 'log connections closed: pods were relabeled and a policy now denies them {"closed":2}', 'unenroll uid-gone gone=true']);
  r.stop();
});

test('stop cancels a pending pass and a pending retry', async (t) => {
  // Mocked timers: time moves past both delays for certain, so nothing ran because nothing was left to run.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const f = fakes([pod('a')], new Map([['uid-a', 1]]));
  const r = new Reconciler(f.deps);
  r.markSynced();
  await new Promise(setImmediate); // the failed enrollment's retry is scheduled
  r.soon();
  r.stop();
  t.mock.timers.tick(10_000);
  await new Promise(setImmediate);
  assert.deepEqual(f.calls, ['enroll a']);
});

test("an error's retryable decides the retry: retryable soon, non-retryable only after the hold (not on every informer event meanwhile)", async () => {
  const failures = new Map([['uid-flaky', 2], ['uid-refused', 1]]);
  const f = fakes([pod('flaky'), pod('refused')], failures, (p) =>
    p.name === 'flaky' ? new WarrenError('ERR_NETNS_NOT_FOUND', 'no netns yet', { retryable: true }) : new WarrenError('ERR_COMMAND_FAILED', 'nft: rule refused'),
  );
  f.deps.holdMs = 400;
  const r = new Reconciler(f.deps);
  const started = Date.now();
  r.markSynced();
  for (let i = 0; i < 100 && !f.enrolled.has('uid-flaky'); i++) {
    r.soon(); // informer events keep coming
    await sleep(10);
  }
  const count = (name: string): number => f.calls.filter((c) => c === `enroll ${name}`).length;
  assert.equal(count('flaky'), 3, 'the retryable failure was retried until it worked');
  assert.equal(count('refused'), 1, 'the non-retryable one was not, despite the passes');
  assert.ok(f.calls.some((c) => c.startsWith('log enrollment not retried') && c.includes('ERR_COMMAND_FAILED')));
  for (let i = 0; i < 200 && !f.enrolled.has('uid-refused'); i++) await sleep(10);
  assert.ok(f.enrolled.has('uid-refused'), 'tried again once the hold is over');
  assert.ok(Date.now() - started >= 390, `held for ${Date.now() - started} ms`);
  assert.equal(count('refused'), 2);
  r.stop();
});
