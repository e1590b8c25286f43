import { test } from 'node:test';
import assert from 'node:assert/strict';
import { familiesOf, parseNodeRedirectSpec, parsePodRedirectSpec } from '../../../src/redirect/spec.js';
import { WarrenError } from '../../../src/errors/warren-error.js';

const rejects = (input: unknown, field: RegExp): void => {
  assert.throws(
    () => parsePodRedirectSpec(input),
    (e: unknown) => e instanceof WarrenError && e.code === 'ERR_INVALID_REDIRECT_SPEC' && field.test(e.message),
  );
};

test('a malformed IP is an error naming the field and the value', () => {
  rejects({ podIPs: ['10.0.0.1', '10.0.0.300'] }, /podIPs\[1\]: not an IP address: "10\.0\.0\.300"/);
});

test('wrong types, empty lists and unknown fields are refused with the field named', () => {
  rejects({ podIPs: '10.0.0.1' }, /podIPs:/);
  rejects({ podIPs: [] }, /podIPs: a pod needs at least one IP/);
  rejects({ podIPs: ['10.0.0.1'], dnsCapture: true }, /dnsCapture/);
  rejects({ podIPs: ['10.0.0.1'], podIps: [] }, /podIps/);
  rejects(null, /\(root\)/);
});

test('defaults and families', () => {
  assert.deepEqual(parsePodRedirectSpec({ podIPs: ['fd00::1'] }), { podIPs: ['fd00::1'] });
  assert.deepEqual(familiesOf(['10.0.0.1']), { ipv4: true, ipv6: false });
  assert.deepEqual(familiesOf(['10.0.0.1', 'fd00::1']), { ipv4: true, ipv6: true });
  assert.deepEqual(parseNodeRedirectSpec({ podIPs: [] }), { podIPs: [] });
  assert.throws(() => parseNodeRedirectSpec({ podIPs: ['x'] }), /podIPs\[0\]: not an IP address/);
});
