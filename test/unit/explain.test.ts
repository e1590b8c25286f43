import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { WarrenError } from '../../src/errors/warren-error.js';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { renderExplanation } from '../../src/cli/policies-explain.js';
import { failClosedPolicy, parseAuthorizationPolicy } from '../../src/policy/authorization.js';
import { explainConnection, type ExplainState } from '../../src/policy/explain.js';
import { parsePeerAuthentication } from '../../src/policy/peer-authentication.js';

const pod = (ref: string, ips: string[], o: { sa?: string; node?: string; enrolled?: boolean; labels?: Record<string, string> } = {}): V1Pod => {
  const [namespace, name] = ref.split('/') as [string, string];
  return {
    metadata: { namespace, name, uid: `uid-${name}`, labels: o.labels ?? {}, annotations: o.enrolled === false ? {} : { 'warren.io/redirection': 'enabled' } },
    spec: { containers: [], nodeName: o.node ?? 'node-1', serviceAccountName: o.sa ?? 'default' },
    status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
  };
};
const index = buildClusterIndex(
  [
    pod('demo/client-a', ['10.244.1.2', 'fd00:10:244:1::2'], { sa: 'client-a' }),
    pod('demo/client-b', ['10.244.1.3'], { sa: 'client-b' }),
    pod('demo/web', ['10.244.2.2'], { node: 'node-2', labels: { app: 'web' } }),
    pod('legacy/curl', ['10.244.1.9'], { enrolled: false }),
    pod('outside/db', ['10.244.2.9'], { enrolled: false }),
  ],
  [],
  [],
);
const ap = (ref: string, spec: object) => {
  const [namespace, name] = ref.split('/') as [string, string];
  return parseAuthorizationPolicy({ metadata: { namespace, name }, spec });
};
const state = (over: Partial<ExplainState> = {}): ExplainState => ({
  index,
  authorizationPolicies: [
    ap('demo/deny-b', { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/client-b'] } }] }] }),
    ap('demo/allow-web', { selector: { matchLabels: { app: 'web' } }, rules: [{ to: [{ operation: { ports: ['9090'] } }] }, { from: [{ source: { namespaces: ['demo'] } }], to: [{ operation: { ports: ['8080'] } }] }] }),
  ],
  peerAuthentications: [],
  rootNamespace: 'warren-system',
  trustDomain: 'cluster.local',
  ...over,
});

test('explain: an enrolled client denied by a DENY rule, named with the principal it matched', () => {
  const e = explainConnection(state(), { from: 'demo/client-b', to: 'demo/web:8080' });
  assert.deepEqual(e.from, { pod: 'demo/client-b', serviceAccount: 'client-b', ip: '10.244.1.3', enrolled: true, principal: 'spiffe://cluster.local/ns/demo/sa/client-b' });
  assert.deepEqual(e.to, { pod: 'demo/web', ip: '10.244.2.2', port: 8080, node: 'node-2', enrolled: true, labels: { app: 'web' } });
  assert.equal(e.mtls, true);
  assert.deepEqual(e.peerAuthentication, { mode: 'PERMISSIVE', level: 'default' });
  assert.deepEqual([e.decision, e.basis, e.policy, e.rule], ['deny', 'deny-rule', 'demo/deny-b', 0]);
  assert.deepEqual(e.evaluated[0]!.rules[0]!.conditions, ['from[0].source.principals ["cluster.local/ns/demo/sa/client-b"] matched cluster.local/ns/demo/sa/client-b']);
});

test('explain: an allowed client names the ALLOW rule; the source IP is of the destination family; IPs work for both ends', () => {
  const e = explainConnection(state(), { from: 'demo/client-a', to: 'demo/web:8080' });
  assert.deepEqual([e.decision, e.basis, e.policy, e.rule], ['allow', 'allow-rule', 'demo/allow-web', 1]);
  assert.equal(e.from.ip, '10.244.1.2');
  const byIp = explainConnection(state(), { from: '10.244.1.2', to: '10.244.2.2:8080' });
  assert.deepEqual({ ...byIp, from: { ...byIp.from } }, { ...e, from: { ...e.from } });
  const otherPort = explainConnection(state(), { from: 'demo/client-a', to: 'demo/web:7000' });
  assert.deepEqual([otherPort.decision, otherPort.basis, otherPort.policy, otherPort.rule], ['deny', 'no-allow-match', null, null]);
  assert.match(otherPort.reason, /demo\/allow-web/);
});

test('explain: a client that is not enrolled arrives as plaintext, without a principal; STRICT refuses it before any AuthorizationPolicy', () => {
  const plain = explainConnection(state(), { from: 'legacy/curl', to: 'demo/web:8080' });
  assert.equal(plain.mtls, false);
  assert.equal(plain.from.principal, undefined);
  assert.deepEqual([plain.decision, plain.basis], ['deny', 'no-allow-match'], 'namespaces: [demo] needs an identity');
  const strict = parsePeerAuthentication({ metadata: { namespace: 'demo', name: 'strict' }, spec: { mtls: { mode: 'STRICT' } } });
  const refused = explainConnection(state({ peerAuthentications: [strict], authorizationPolicies: [] }), { from: 'legacy/curl', to: 'demo/web:8080' });
  assert.deepEqual([refused.decision, refused.basis, refused.policy, refused.evaluated], ['deny', 'peer-authentication', 'demo/strict', []]);
  assert.match(refused.reason, /PeerAuthentication demo\/strict \(namespace level\) is STRICT/);
  const meshClient = explainConnection(state({ peerAuthentications: [strict], authorizationPolicies: [] }), { from: 'demo/client-a', to: 'demo/web:8080' });
  assert.deepEqual([meshClient.decision, meshClient.basis, meshClient.peerAuthentication.mode], ['allow', 'no-allow-policy', 'STRICT'], 'mTLS satisfies STRICT');
  const outsider = explainConnection(state({ authorizationPolicies: [] }), { from: '192.0.2.7', to: 'demo/web:8080' });
  assert.deepEqual(outsider.from, { ip: '192.0.2.7', enrolled: false }, 'an IP that is no pod: a client from outside the mesh');
});

test('explain: a destination that is not enrolled is not enforced by warren at all', () => {
  const e = explainConnection(state({ authorizationPolicies: [ap('outside/deny-all', { action: 'DENY', rules: [{}] })] }), { from: 'demo/client-a', to: 'outside/db:5432' });
  assert.deepEqual([e.decision, e.basis, e.mtls], ['allow', 'not-enrolled', false]);
  assert.match(e.reason, /not enrolled/);
});

test('explain: a malformed parameter is ERR_EXPLAIN_QUERY naming it; a pod that is not there is ERR_EXPLAIN_NOT_FOUND', () => {
  const fails = (query: { from: string | null; to: string | null }, code: string, message: RegExp) =>
    assert.throws(() => explainConnection(state(), query), (e: unknown) => e instanceof WarrenError && e.code === code && message.test(e.message));
  fails({ from: null, to: 'demo/web:8080' }, 'ERR_EXPLAIN_QUERY', /^from: required/);
  fails({ from: 'demo/client-a', to: null }, 'ERR_EXPLAIN_QUERY', /^to: required/);
  fails({ from: 'Demo/Client', to: 'demo/web:8080' }, 'ERR_EXPLAIN_QUERY', /^from: "Demo\/Client" is not NS\/POD or an IP address/);
  fails({ from: 'demo/client-a', to: 'demo/web' }, 'ERR_EXPLAIN_QUERY', /^to: "demo\/web" is not NS\/POD:PORT/);
  fails({ from: 'demo/client-a', to: 'demo/web:http' }, 'ERR_EXPLAIN_QUERY', /^to: port "http" is not 1-65535/);
  fails({ from: 'demo/client-a', to: 'demo/web:70000' }, 'ERR_EXPLAIN_QUERY', /^to: port "70000"/);
  fails({ from: 'demo/client-a', to: 'fd00::1:80' }, 'ERR_EXPLAIN_QUERY', /^to: an IPv6 address needs brackets/);
  fails({ from: 'demo/nope', to: 'demo/web:8080' }, 'ERR_EXPLAIN_NOT_FOUND', /^from: no pod demo\/nope/);
  fails({ from: 'demo/client-a', to: 'demo/nope:8080' }, 'ERR_EXPLAIN_NOT_FOUND', /^to: no pod demo\/nope/);
  fails({ from: 'demo/client-a', to: '10.9.9.9:8080' }, 'ERR_EXPLAIN_NOT_FOUND', /^to: no pod has IP 10\.9\.9\.9/);
  assert.equal(explainConnection(state(), { from: 'demo/client-a', to: '[fd00:10:244:1::2]:8080' }).to.pod, 'demo/client-a', 'bracketed IPv6');
});

test('explain names an invalid policy as what denies, and shows what dry-run policies would do', () => {
  const typo = { metadata: { namespace: 'demo', name: 'allow-typo' }, spec: { selector: { matchLabels: { app: 'web' } }, rules: [{ form: [{ source: { namespaces: ['demo'] } }] }] } };
  const stand = failClosedPolicy(typo, 'spec.rules.0: Unrecognized key: "form"')!;
  const e = explainConnection(state({ authorizationPolicies: [stand] }), { from: 'demo/client-a', to: 'demo/web:8080' });
  assert.deepEqual([e.decision, e.basis, e.policy, e.rule], ['deny', 'invalid-policy', 'demo/allow-typo', null]);
  assert.match(e.evaluated[0]!.note!, /invalid \(spec\.rules\.0: Unrecognized key: "form"\): denies everything it selects until fixed/);
  assert.match(renderExplanation(e, 'node-2'), /^DENY .*\n {2}denied: AuthorizationPolicy demo\/allow-typo is invalid/);

  const dry = parseAuthorizationPolicy({ metadata: { namespace: 'demo', name: 'dry-deny', annotations: { 'istio.io/dry-run': 'true' } }, spec: { action: 'DENY', rules: [{}] } });
  const d = explainConnection(state({ authorizationPolicies: [dry] }), { from: 'demo/client-a', to: 'demo/web:8080' });
  assert.deepEqual([d.decision, d.dryRun?.decision], ['allow', 'deny']);
  assert.deepEqual([d.evaluated[0]!.dryRun, d.evaluated[0]!.note], [true, 'dry run: evaluated and reported, not enforced']);
  assert.match(renderExplanation(d, 'node-2'), /\n {2}dry run: would deny with the istio\.io\/dry-run policies enforced \(denied by AuthorizationPolicy demo\/dry-deny rule 0\)/);
});
