import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorize, parseAuthorizationPolicy, type AuthorizationPolicy, type L4Request } from '../../src/policy/authorization.js';

// The README's L4 fields that no other test decides a connection with: the negative
// matches notPrincipals, notPorts, notIpBlocks, and `when` on source.principal and
// destination.ip. Each case has a connection on both sides of the field.
const ROOT = 'warren-system';
const policy = (name: string, spec: object): AuthorizationPolicy =>
  parseAuthorizationPolicy({ apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', metadata: { namespace: 'foo', name }, spec });
const conn = (o: { ip?: string; principal?: string; dstIp?: string; port?: number }): L4Request => ({
  source: { ip: o.ip ?? '10.244.1.5', ...(o.principal ? { principal: o.principal } : {}) },
  destination: { namespace: 'foo', labels: { app: 'db' }, ip: o.dstIp ?? '10.244.2.7', port: o.port ?? 5432 },
});
const sleep = 'spiffe://cluster.local/ns/default/sa/sleep';
const curl = 'spiffe://cluster.local/ns/bar/sa/curl';

const cases: Array<[string, AuthorizationPolicy, L4Request, boolean]> = [
  ['DENY notPrincipals [sleep]: curl is denied', policy('p', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['cluster.local/ns/default/sa/sleep'] } }] }] }), conn({ principal: curl }), false],
  ['DENY notPrincipals [sleep]: sleep passes', policy('p', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['cluster.local/ns/default/sa/sleep'] } }] }] }), conn({ principal: sleep }), true],
  ['ALLOW notPorts [5432]: 8080 is allowed', policy('p', { rules: [{ to: [{ operation: { notPorts: ['5432'] } }] }] }), conn({ port: 8080 }), true],
  ['ALLOW notPorts [5432]: 5432 is not', policy('p', { rules: [{ to: [{ operation: { notPorts: ['5432'] } }] }] }), conn({ port: 5432 }), false],
  ['ALLOW notIpBlocks [10.244.1.0/24]: 10.244.9.9 is allowed', policy('p', { rules: [{ from: [{ source: { notIpBlocks: ['10.244.1.0/24'] } }] }] }), conn({ ip: '10.244.9.9' }), true],
  ['ALLOW notIpBlocks [10.244.1.0/24]: 10.244.1.5 is not', policy('p', { rules: [{ from: [{ source: { notIpBlocks: ['10.244.1.0/24'] } }] }] }), conn({ ip: '10.244.1.5' }), false],
  ['when source.principal = sleep: sleep is allowed', policy('p', { rules: [{ when: [{ key: 'source.principal', values: ['cluster.local/ns/default/sa/sleep'] }] }] }), conn({ principal: sleep }), true],
  ['when source.principal = sleep: curl is not', policy('p', { rules: [{ when: [{ key: 'source.principal', values: ['cluster.local/ns/default/sa/sleep'] }] }] }), conn({ principal: curl }), false],
  ['when source.principal = sleep: plaintext has no principal', policy('p', { rules: [{ when: [{ key: 'source.principal', values: ['cluster.local/ns/default/sa/sleep'] }] }] }), conn({}), false],
  ['when destination.ip in 10.244.2.0/24: 10.244.2.7 is allowed', policy('p', { rules: [{ when: [{ key: 'destination.ip', values: ['10.244.2.0/24'] }] }] }), conn({ dstIp: '10.244.2.7' }), true],
  ['when destination.ip in 10.244.2.0/24: 10.244.3.7 is not', policy('p', { rules: [{ when: [{ key: 'destination.ip', values: ['10.244.2.0/24'] }] }] }), conn({ dstIp: '10.244.3.7' }), false],
  ['DENY when destination.ip notValues [10.244.2.7]: another address of the pod is denied', policy('p', { action: 'DENY', rules: [{ when: [{ key: 'destination.ip', notValues: ['10.244.2.7'] }] }] }), conn({ dstIp: 'fd00::7' }), false],
  ['DENY when destination.ip notValues [10.244.2.7]: that address passes', policy('p', { action: 'DENY', rules: [{ when: [{ key: 'destination.ip', notValues: ['10.244.2.7'] }] }] }), conn({ dstIp: '10.244.2.7' }), true],
];

for (const [name, p, request, allow] of cases) {
  test(name, () => {
    assert.equal(authorize([p], ROOT, request).allow, allow);
  });
}
