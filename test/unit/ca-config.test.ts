import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadCaConfig } from '../../src/ca/config.js';
import { WarrenError } from '../../src/errors/warren-error.js';

test('warren ca defaults: 24h certificates, the warren-node service account of its namespace, port 15012', () => {
  const c = loadCaConfig({}, {});
  assert.equal(c.certTtl, 86_400_000);
  assert.equal(c.listen, '0.0.0.0:15012');
  assert.equal(c.trustDomain, 'cluster.local');
  assert.deepEqual(c.allowedCallers, ['system:serviceaccount:warren-system:warren-node']);
  const e = loadCaConfig({ certTtl: undefined, namespace: undefined }, { POD_NAMESPACE: 'mesh', WARREN_CERT_TTL: '1h30m' });
  assert.equal(e.certTtl, 5_400_000);
  assert.deepEqual(e.allowedCallers, ['system:serviceaccount:mesh:warren-node']);
  assert.equal(loadCaConfig({ certTtl: '20s' }, { WARREN_CERT_TTL: '1h' }).certTtl, 20_000, 'the flag wins');
  assert.deepEqual(loadCaConfig({ allowedCallers: 'system:serviceaccount:a:b, system:serviceaccount:c:d' }, {}).allowedCallers, ['system:serviceaccount:a:b', 'system:serviceaccount:c:d']);
});

test('bad values name the flag', () => {
  const fails = (flags: Record<string, unknown>, flag: RegExp) =>
    assert.throws(() => loadCaConfig(flags, {}), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_CONFIG' && flag.test(e.message));
  fails({ certTtl: '5x' }, /^--cert-ttl: /);
  fails({ certTtl: '1s' }, /^--cert-ttl: must be between 10s and 90d/);
  fails({ listen: 'localhost' }, /^--listen: /);
  fails({ allowedCallers: 'admin' }, /^--allowed-callers: /);
  fails({ caCert: '/x.pem' }, /^--ca-key: --ca-cert and --ca-key go together/);
  fails({ rootCert: '/r.pem' }, /^--root-cert: /);
});
