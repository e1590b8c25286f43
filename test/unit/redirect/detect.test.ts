import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseBackend, cleanupBackends, type BackendFacts } from '../../../src/redirect/detect.js';
import { WarrenError } from '../../../src/errors/warren-error.js';

const facts = (f: Partial<BackendFacts>): BackendFacts => ({ nftAvailable: true, iptablesAvailable: true, iptablesRuleCount: 0, ...f });

test('auto follows the host: iptables when it already has iptables rules, nft otherwise', () => {
  assert.equal(chooseBackend('auto', facts({})), 'nft');
  assert.equal(chooseBackend('auto', facts({ iptablesRuleCount: 12 })), 'iptables');
  assert.equal(chooseBackend('auto', facts({ nftAvailable: false })), 'iptables');
  assert.equal(chooseBackend('auto', facts({ iptablesAvailable: false, iptablesRuleCount: 3 })), 'nft');
});

test('an explicit choice is honoured, or refused with the package to install', () => {
  assert.equal(chooseBackend('iptables', facts({ iptablesRuleCount: 0 })), 'iptables');
  assert.equal(chooseBackend('nft', facts({ iptablesRuleCount: 50 })), 'nft');
  assert.throws(
    () => chooseBackend('nft', facts({ nftAvailable: false })),
    (e: unknown) => e instanceof WarrenError && e.code === 'ERR_BACKEND_UNAVAILABLE' && /install nftables/.test(e.message),
  );
  assert.throws(
    () => chooseBackend('auto', facts({ nftAvailable: false, iptablesAvailable: false })),
    (e: unknown) => e instanceof WarrenError && e.code === 'ERR_BACKEND_UNAVAILABLE',
  );
});

test('uninstall cleans with every backend the host has, whatever auto would pick', () => {
  assert.deepEqual(cleanupBackends(facts({})), ['nft', 'iptables']);
  assert.deepEqual(cleanupBackends(facts({ iptablesRuleCount: 12 })), ['nft', 'iptables']);
  assert.deepEqual(cleanupBackends(facts({ iptablesAvailable: false })), ['nft']);
  assert.deepEqual(cleanupBackends(facts({ nftAvailable: false, iptablesAvailable: false })), []);
});
