import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionRegistry } from '../../src/tunnel/connection-registry.js';

test('reauthorize resets exactly the connections whose admitting check now refuses; outbound (no check) and released ones are left alone', () => {
  const registry = new ConnectionRegistry();
  const pod = registry.forPod();
  const reset: string[] = [];
  let allowed = true;
  pod.register('outbound', () => reset.push('outbound'));
  pod.register('inbound', () => reset.push('inbound')).authorizedBy(() => allowed);
  pod.register('hbone', () => reset.push('hbone')).authorizedBy(() => true);
  const ended = pod.register('hbone', () => reset.push('ended'));
  ended.authorizedBy(() => allowed);
  ended.release();
  assert.equal(registry.reauthorize(), 0);
  allowed = false;
  assert.equal(registry.reauthorize(), 1);
  assert.deepEqual(reset, ['inbound']);
  assert.deepEqual([pod.count(), pod.count('outbound'), pod.count('inbound'), pod.count('hbone')], [2, 1, 0, 1]);
  assert.equal(registry.reauthorize(), 0, 'a reset connection is not reset twice');
});

test('one registry re-checks every pod; a closed pod is forgotten and a connection registered after is reset at once', () => {
  const registry = new ConnectionRegistry();
  const a = registry.forPod();
  const b = registry.forPod();
  const reset: string[] = [];
  a.register('inbound', (r) => reset.push(`a: ${r}`)).authorizedBy(() => false);
  b.register('inbound', (r) => reset.push(`b: ${r}`)).authorizedBy(() => false);
  b.register('outbound', (r) => reset.push(`b out: ${r}`));
  assert.equal(registry.reauthorize(), 2);
  b.close('the pod left the mesh');
  assert.deepEqual(reset, ['a: a policy change denies this connection', 'b: a policy change denies this connection', 'b out: the pod left the mesh']);
  b.register('hbone', (r) => reset.push(`b late: ${r}`)).authorizedBy(() => false);
  assert.equal(b.count(), 0);
  assert.equal(reset.at(-1), 'b late: the pod left the mesh');
  a.register('inbound', (r) => reset.push(`a2: ${r}`)).authorizedBy(() => false);
  assert.equal(registry.reauthorize(), 1, "only a's connection: b is no longer in the registry");
});

test('settle resolves as soon as the last connection ends, or at the drain deadline with the rest still open', async () => {
  const pod = new ConnectionRegistry().forPod();
  const first = pod.register('outbound', () => {});
  const second = pod.register('inbound', () => {});
  const started = performance.now();
  setTimeout(() => first.release(), 20);
  setTimeout(() => second.release(), 40);
  await pod.settle(5_000);
  const early = performance.now() - started;
  assert.ok(early < 1_000, `settled after ${early} ms, not at the 5 s deadline`);

  pod.register('hbone', () => {});
  const again = performance.now();
  await pod.settle(100);
  const late = performance.now() - again;
  assert.ok(late >= 95 && late < 1_000, `gave up after ${late} ms`);
  assert.equal(pod.count(), 1, 'settle resets nothing; close does');
});
