import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EnrollmentManager, type EnrollmentDeps, type RedirectionState } from '../../src/agent/enrollment-manager.js';
import type { PodView } from '../../src/agent/enrollment-plan.js';
import type { RedirectBackend } from '../../src/redirect/backend.js';
import { podRulesId } from '../../src/redirect/pod-rules-id.js';
import type { DataPlane } from '../../src/tunnel/dataplane.js';
import type { PodProxy, PodProxyOptions } from '../../src/tunnel/pod-proxy.js';
import type { ConnectionObserver } from '../../src/telemetry/connection-observer.js';
import { ConnectionRegistry } from '../../src/tunnel/connection-registry.js';

const pod = (name: string, ips = ['10.244.1.9']): PodView => ({ uid: `uid-${name}`, namespace: 'shop', name, ips, labels: { app: name }, hostNetwork: false, serviceAccount: 'default', phase: 'Running' });

/**
 * The manager's side effects as a journal: rules (backend), listeners (the
 * proxy), identities and annotations, in the order they happened. The kernel
 * side of the same steps is covered by the netns and e2e tiers.
 */
function fakes(over: { failApply?: boolean; failProxy?: boolean; failIdentity?: boolean; netns?: string } = {}) {
  const journal: string[] = [];
  const annotations: Array<[string, RedirectionState, string | undefined]> = [];
  const proxies = new Map<string, { reset: string[]; closedWith?: number }>();
  const backend: RedirectBackend = {
    name: 'nft',
    applyPod: async (netns, spec) => {
      journal.push(`applyPod ${netns} ${spec.podIPs.join(',')}`);
      if (over.failApply) throw new Error('nft refused');
    },
    removePod: async (netns) => void journal.push(`removePod ${netns}`),
    removePodCapture: async (netns) => void journal.push(`removePodCapture ${netns}`),
    applyNode: async (_netns, spec) => void journal.push(`applyNode ${spec.podIPs.join(',')}`),
    removeNode: async () => void journal.push('removeNode'),
  };
  const startProxy = async (o: PodProxyOptions): Promise<PodProxy> => {
    journal.push(`listen ${o.pod} ${o.netns}`);
    const state: { reset: string[]; closedWith?: number } = { reset: [] };
    proxies.set(o.pod, state);
    // One live inbound connection, admitted by a policy that denies pods labeled tier=web
    // (one listener took it before another failed to bind, with failProxy).
    o.connections.register('inbound', (reason) => void state.reset.push(reason)).authorizedBy(() => o.labels()['tier'] !== 'web');
    if (over.failProxy) throw new Error('bind failed');
    const fake = {
      close: async (drainMs: number) => {
        state.closedWith = drainMs;
        journal.push(`close ${o.pod} ${drainMs}`);
      },
    };
    return fake as unknown as PodProxy;
  };
  const ruleErrors: string[] = [];
  const ruleApplies: string[] = [];
  const deps: EnrollmentDeps = {
    backend,
    findNetns: async (p) => (journal.push(`findNetns ${p.uid}`), over.netns ?? `/proc/1/ns/net`),
    annotate: async (p, state, reason) => void annotations.push([p.name, state, reason]),
    acquireIdentity: async (p) => {
      journal.push(`identity ${p.serviceAccount}`);
      if (over.failIdentity) throw new Error('CA unreachable');
      return { trustDomain: 'cluster.local', namespace: p.namespace, serviceAccount: p.serviceAccount };
    },
    releaseIdentity: (uid) => void journal.push(`release ${uid}`),
    startProxy,
    connections: new ConnectionRegistry(),
    dataplane: {} as DataPlane,
    telemetry: {} as ConnectionObserver,
    ruleError: (op) => void ruleErrors.push(op),
    ruleApplied: (op) => void ruleApplies.push(op),
    log: () => {},
    drainMs: 5000,
  };
  return { deps, journal, annotations, proxies, ruleErrors, ruleApplies };
}

test('enrollment: certificate first, then rules in the netns the CNI gave, then listeners (the node SNAT written alongside), then the annotation', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/cni-a');
  assert.deepEqual(f.journal.filter((j) => !j.startsWith('applyNode')), ['identity default', 'applyPod /var/run/netns/cni-a 10.244.1.9', 'listen shop/a /var/run/netns/cni-a']);
  assert.ok(f.journal.indexOf('applyNode 10.244.1.9') > 0, 'the node SNAT includes the pod before its enrollment completes');
  await new Promise(setImmediate);
  assert.deepEqual(f.annotations, [['a', 'enabled', undefined]]);
  assert.deepEqual([...m.enrolledUids()], ['uid-a']);
});

test('enrollment answers (a CNI ADD) once rules and listeners are in place, not after the annotation write; a later unenrollment waits for it', async () => {
  const f = fakes();
  let release = (): void => {};
  const writes: string[] = [];
  f.deps.annotate = async (_p, state) => {
    writes.push(`start ${state}`);
    if (state === 'enabled') await new Promise<void>((resolve) => (release = resolve));
    writes.push(`done ${state}`);
  };
  const m = new EnrollmentManager(f.deps);
  const answered = await Promise.race([m.enroll(pod('a'), '/var/run/netns/cni-a').then(() => true), new Promise<false>((resolve) => setTimeout(resolve, 2000, false))]);
  if (!answered) release();
  assert.ok(answered, 'enroll resolved while the annotation write is still pending');
  assert.deepEqual([...m.enrolledUids()], ['uid-a']);
  const unenrolled = m.unenroll('uid-a', { podGone: false, podRef: { namespace: 'shop', name: 'a' } });
  await new Promise(setImmediate);
  assert.deepEqual(writes, ['start enabled'], 'the unenrollment waits behind the pending annotation');
  release();
  await unenrolled;
  assert.deepEqual(writes, ['start enabled', 'done enabled', 'start disabled', 'done disabled']);
});

test('a running pod without a CNI call has its netns found; enrolling twice does nothing the second time', async () => {
  const f = fakes({ netns: '/proc/42/ns/net' });
  const m = new EnrollmentManager(f.deps);
  await Promise.all([m.enroll(pod('a')), m.enroll(pod('a'))]);
  assert.deepEqual(f.journal.filter((j) => j.startsWith('findNetns') || j.startsWith('applyPod')), ['findNetns uid-a', 'applyPod /proc/42/ns/net 10.244.1.9']);
  assert.equal(m.enrolled()[0]?.netns, '/proc/42/ns/net');
});

test('every rule write is counted once by operation, and nothing more: enrolling an enrolled pod again writes none (no churn)', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  await Promise.all([m.enroll(pod('a')), m.enroll(pod('a'), '/var/run/netns/a')]);
  assert.deepEqual(f.ruleApplies.sort(), ['node', 'pod-apply']);
  await m.unenroll('uid-a', { podGone: false, podRef: { namespace: 'shop', name: 'a' } });
  assert.deepEqual(f.ruleApplies.slice(2), ['pod-remove-capture', 'node', 'pod-remove']);
  await m.enroll(pod('b'), '/var/run/netns/b');
  f.ruleApplies.length = 0;
  await m.unenroll('uid-b', { podGone: true });
  assert.deepEqual(f.ruleApplies, ['node'], 'a pod gone with its netns has no rules of its own to remove');
  assert.deepEqual(f.ruleErrors, []);
});

test('an upgrade: a pod whose rules the old agent wrote as this one would is adopted without writing them; other rules, or none said, are written', async () => {
  const f = fakes();
  const asked: Array<[string, string, string]> = [];
  // the old agent said: uid-a's rules in /var/run/netns/a are those of rules id podRulesId('nft', a's IPs)
  const said = new Map([['uid-a', podRulesId('nft', { podIPs: ['10.244.1.9'] })], ['uid-c', podRulesId('iptables', { podIPs: ['10.244.1.9'] })]]);
  f.deps.rulesInPlace = (uid, netns, rulesId) => (asked.push([uid, netns, rulesId]), netns.endsWith(uid.slice(4)) && said.get(uid) === rulesId);
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  assert.deepEqual(f.ruleApplies, ['node'], 'no pod-apply for the adopted pod (the node write follows the pod IPs)');
  assert.ok(f.journal.includes('listen shop/a /var/run/netns/a'), 'its listeners are made (or adopted) all the same');
  assert.ok(!f.journal.some((j) => j.startsWith('applyPod')));
  assert.equal(m.enrolled()[0]?.rulesId, said.get('uid-a'), 'the entry keeps the id, for the next upgrade');
  await m.enroll(pod('b'), '/var/run/netns/b');
  await m.enroll(pod('c'), '/var/run/netns/c');
  assert.deepEqual(
    f.journal.filter((j) => j.startsWith('applyPod')),
    ['applyPod /var/run/netns/b 10.244.1.9', 'applyPod /var/run/netns/c 10.244.1.9'],
    'written when the old agent said nothing of the pod (b) or wrote other rules (c: another backend)',
  );
  assert.deepEqual(asked.map(([uid, netns]) => [uid, netns]), [['uid-a', '/var/run/netns/a'], ['uid-b', '/var/run/netns/b'], ['uid-c', '/var/run/netns/c']]);
  assert.ok(asked.every(([, , id]) => id === said.get('uid-a')), 'asked with the id of the rules this agent would write');
});

test('an adopted pod whose listeners fail keeps the old agent’s rules (its listeners still serve), where a pod this agent wrote rules for has them taken back', async () => {
  const f = fakes({ failProxy: true });
  f.deps.rulesInPlace = (uid) => uid === 'uid-a';
  const m = new EnrollmentManager(f.deps);
  await assert.rejects(m.enroll(pod('a'), '/var/run/netns/a'), /bind failed/);
  await assert.rejects(m.enroll(pod('b'), '/var/run/netns/b'), /bind failed/);
  assert.deepEqual(f.journal.filter((j) => j.startsWith('removePod ')), ['removePod /var/run/netns/b']);
});

test('rules refused: counted, identity released, pod annotated failed with the reason, nothing enrolled, error passed on', async () => {
  const f = fakes({ failApply: true });
  const m = new EnrollmentManager(f.deps);
  await assert.rejects(m.enroll(pod('a'), '/var/run/netns/a'), /nft refused/);
  assert.deepEqual(f.ruleErrors, ['pod-apply']);
  assert.ok(!f.ruleApplies.includes('pod-apply'), 'a refused write is not counted as applied');
  assert.ok(f.journal.includes('release uid-a'));
  assert.ok(!f.journal.some((j) => j.startsWith('listen')), 'no listeners without rules');
  assert.deepEqual(f.annotations, [['a', 'failed', 'nft refused']]);
  assert.deepEqual(m.enrolled(), []);
});

test('listeners that cannot start take the rules back (rules without listeners would black-hole the pod)', async () => {
  const f = fakes({ failProxy: true });
  const m = new EnrollmentManager(f.deps);
  await assert.rejects(m.enroll(pod('a'), '/var/run/netns/a'), /bind failed/);
  const i = f.journal.indexOf('listen shop/a /var/run/netns/a');
  assert.ok(i >= 0 && f.journal.indexOf('removePod /var/run/netns/a') > i, f.journal.join('\n'));
  assert.deepEqual(m.enrolled(), []);
  assert.equal(f.annotations.at(-1)?.[1], 'failed');
  assert.deepEqual(f.proxies.get('shop/a')?.reset, ['enrollment failed'], 'what it had accepted is reset');
});

test('no certificate: no rules at all (a pod that cannot speak mTLS is not captured)', async () => {
  const f = fakes({ failIdentity: true });
  const m = new EnrollmentManager(f.deps);
  await assert.rejects(m.enroll(pod('a'), '/var/run/netns/a'), /CA unreachable/);
  assert.ok(!f.journal.some((j) => j.startsWith('applyPod') || j.startsWith('applyNode')), f.journal.join('\n'));
});

test('unenrolling a pod that stays: capture off first, node SNAT without it, annotation, drain, then the rest of the rules', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  await m.enroll(pod('b', ['10.244.1.10']), '/var/run/netns/b');
  f.journal.length = 0;
  await m.unenroll('uid-a', { podGone: false, podRef: { namespace: 'shop', name: 'a' } });
  assert.deepEqual(f.journal, ['removePodCapture /var/run/netns/a', 'applyNode 10.244.1.10', 'close shop/a 5000', 'removePod /var/run/netns/a', 'release uid-a']);
  assert.deepEqual(f.annotations.at(-1), ['a', 'disabled', undefined]);
  assert.deepEqual([...m.enrolledUids()], ['uid-b']);
});

test('a deleted pod: no rules to remove in a netns that is gone, no drain, no annotation; the last one clears the node SNAT', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  await new Promise(setImmediate);
  f.journal.length = 0;
  const before = f.annotations.length;
  await m.unenroll('uid-a', { podGone: true });
  assert.deepEqual(f.journal, ['removeNode', 'close shop/a 0', 'release uid-a']);
  assert.equal(f.annotations.length, before);
  await m.unenroll('uid-a', { podGone: true });
  assert.equal(f.journal.length, 3, 'unenrolling twice does nothing the second time');
});

test('relabel: the proxy sees the new labels, and the pod\'s live connections they no longer allow are reset; same labels or an unknown pod change nothing', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  await m.enroll(pod('b', ['10.244.1.10']), '/var/run/netns/b');
  assert.equal(m.relabel('uid-a', { app: 'a' }), 0);
  assert.equal(m.relabel('uid-a', { app: 'a', version: 'v2' }), 0, 'still allowed');
  assert.deepEqual(f.proxies.get('shop/a')?.reset, []);
  assert.equal(m.relabel('uid-a', { app: 'a', tier: 'web' }), 1);
  assert.deepEqual(f.proxies.get('shop/a')?.reset, ['a policy change denies this connection']);
  assert.deepEqual(f.proxies.get('shop/b')?.reset, [], "another pod's connections are not touched");
  assert.deepEqual(m.enrolled().find((p) => p.uid === 'uid-a')?.labels, { app: 'a', tier: 'web' });
  assert.equal(m.relabel('uid-unknown', { app: 'x' }), 0);
});

test('a policy change re-checks every enrolled pod\'s connections in the one registry, with each pod\'s current labels', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  await m.enroll(pod('b', ['10.244.1.10']), '/var/run/netns/b');
  // Labels changed without a re-check (as if the policy that denies tier=web were new): the registry's sweep finds it.
  m.enrolled().find((p) => p.uid === 'uid-b')!.labels = { app: 'b', tier: 'web' };
  assert.equal(f.deps.connections.reauthorize(), 1);
  assert.deepEqual([f.proxies.get('shop/a')?.reset, f.proxies.get('shop/b')?.reset], [[], ['a policy change denies this connection']]);
});

test('a burst of enrollments writes the node SNAT far fewer times than once per pod, ending with every pod IP', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  const pods = Array.from({ length: 20 }, (_, i) => pod(`p${i}`, [`10.244.1.${i + 1}`]));
  await Promise.all(pods.map((p) => m.enroll(p, `/var/run/netns/${p.name}`)));
  const writes = f.journal.filter((j) => j.startsWith('applyNode'));
  assert.ok(writes.length <= 3, `${writes.length} node writes`);
  assert.deepEqual(writes.at(-1)!.slice('applyNode '.length).split(',').sort(), pods.map((p) => p.ips[0]!).sort());
});

test('shutdown closes every proxy with the drain period and forgets the pods, leaving rules in place', async () => {
  const f = fakes();
  const m = new EnrollmentManager(f.deps);
  await m.enroll(pod('a'), '/var/run/netns/a');
  f.journal.length = 0;
  await m.shutdown(7000);
  assert.deepEqual(f.journal, ['close shop/a 7000']);
  assert.deepEqual(m.enrolled(), []);
});
