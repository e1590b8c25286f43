import assert from 'node:assert/strict';
import { test } from 'node:test';
import { podRulesId } from '../../../src/redirect/pod-rules-id.js';

test('a pod rules id is the same for the same writes and differs when the backend or the families written differ', () => {
  const v4 = podRulesId('nft', { podIPs: ['10.244.1.9'] });
  assert.match(v4, /^[0-9a-f]{64}$/);
  assert.equal(podRulesId('nft', { podIPs: ['10.244.2.7'] }), v4, 'the pod rules name no pod address: same rules, same id');
  const ids = [v4, podRulesId('nft', { podIPs: ['fd00::9'] }), podRulesId('nft', { podIPs: ['10.244.1.9', 'fd00::9'] }), podRulesId('iptables', { podIPs: ['10.244.1.9'] })];
  assert.equal(new Set(ids).size, ids.length);
  assert.throws(() => podRulesId('nft', { podIPs: [] }), /podIPs/);
});
