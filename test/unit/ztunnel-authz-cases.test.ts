/**
 * ztunnel's own authorization unit tests (istio/ztunnel src/rbac.rs tests,
 * the assert_rbac tests of src/state.rs, src/state/policy.rs), each case
 * written as the AuthorizationPolicy that istiod translates into ztunnel's
 * input (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go:
 * a rule's `to` and `from` lists become one clause each, every `when` its own
 * clause; `*` is presence, `*x` suffix, `x*` prefix; serviceAccounts NAME is
 * in the policy's namespace), then decided by warren's parser and evaluator.
 * Every case decides as ztunnel does, or names the difference the README
 * documents ("Where warren differs from ztunnel").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorize, explainAuthorization, parseAuthorizationPolicy, type AuthorizationPolicy, type L4Request } from '../../src/policy/authorization.js';

const ROOT = 'istio-system';

interface Conn {
  /** SPIFFE ID, absent for plaintext */
  id?: string;
  src: string;
  dst: string;
  port: number;
}
/** rbac.rs's three connections */
const plaintext: Conn = { src: '127.0.0.1', dst: '127.0.0.2', port: 8080 };
const tls: Conn = { id: 'spiffe://td/ns/namespace/sa/account', src: '127.0.0.1', dst: '127.0.0.2', port: 8080 };
const tlsAlt: Conn = { id: 'spiffe://td-alt/ns/ns-alt/sa/sa=alt', src: '127.0.0.3', dst: '127.0.0.4', port: 9090 };
const inNamespace = (ns: string, port = 80): Conn => ({ id: `spiffe://td/ns/${ns}/sa/account`, src: '127.0.0.1', dst: '127.0.0.2', port });

interface Case {
  /** where in ztunnel, and the assertion */
  name: string;
  /** built per case, so that a policy the parser refuses fails its case, not the file */
  policies: () => AuthorizationPolicy[];
  conn: Conn;
  destination?: { namespace: string; labels?: Record<string, string> };
  /** ztunnel's decision: the connection is allowed */
  ztunnel: boolean;
  /** warren's decision where it deliberately differs, and the README's name for why */
  warren?: { allow: boolean; readme: string };
  /** anything else the case asserts about warren's decision */
  check?: (c: Case, r: L4Request) => void;
}

const policy = (namespace: string, name: string, spec: object, annotations?: Record<string, string>): AuthorizationPolicy =>
  parseAuthorizationPolicy({ apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', metadata: { namespace, name, ...(annotations ? { annotations } : {}) }, spec });
/** rbac.rs's allow_policy: an ALLOW of scope Global (warren: the root namespace); `matches` ⇔ the connection is allowed. */
const allowGlobal = (name: string, rules: object[]): AuthorizationPolicy => policy(ROOT, name, { action: 'ALLOW', rules });
const from = (source: object): object => ({ from: [{ source }] });

const cases: Case[] = [];
const matches = (name: string, p: () => AuthorizationPolicy, conns: Array<[string, Conn, boolean]>): void => {
  for (const [label, conn, result] of conns) cases.push({ name: `rbac.rs ${name}: ${label} → ${result}`, policies: () => [p()], conn, ztunnel: result });
};

// rbac.rs rbac_empty_policy
cases.push(
  { name: 'rbac.rs rbac_empty_policy: [[[Match{}]]] from an ALLOW rule of HTTP fields only (istiod omits the rule) → no match', policies: () => [allowGlobal('empty', [from({ requestPrincipals: ['*'] })])], conn: plaintext, ztunnel: false },
  {
    name: 'rbac.rs rbac_empty_policy: [[[Match{}]]] from a DENY rule of HTTP fields only (istiod keeps the empty match) → no match, not denied',
    policies: () => [policy(ROOT, 'empty', { action: 'DENY', rules: [from({ requestPrincipals: ['*'] })] })],
    conn: plaintext,
    ztunnel: true,
    warren: { allow: false, readme: 'an HTTP-only DENY denies at L4' },
  },
  { name: 'rbac.rs rbac_empty_policy: [[[]]] (a rule with from: []) → match', policies: () => [allowGlobal('empty', [{ from: [] }])], conn: plaintext, ztunnel: true },
  { name: 'rbac.rs rbac_empty_policy: [[]] (rules: [{}]) → match', policies: () => [allowGlobal('empty', [{}])], conn: plaintext, ztunnel: true },
  { name: 'rbac.rs rbac_empty_policy: [] (rules: []) → no match', policies: () => [allowGlobal('empty', [])], conn: plaintext, ztunnel: false },
);

// rbac.rs rbac_nesting: one rule, clause 1 "namespace a or b", clause 2 "port 80"
matches('rbac_nesting', () => allowGlobal('nested', [{ from: [{ source: { namespaces: ['a'] } }, { source: { namespaces: ['b'] } }], to: [{ operation: { ports: ['80'] } }] }]), [
  ['namespace a, port 80', inNamespace('a'), true],
  ['namespace b, port 80', inNamespace('b'), true],
  ['namespace b, port 80, remote network (warren has one network: the same input)', inNamespace('b'), true],
  ['wrong namespace', inNamespace('bad'), false],
  ['wrong port', inNamespace('b', 12345), false],
]);

// rbac.rs rbac_multi_rule: two rules, either matches
matches('rbac_multi_rule', () => allowGlobal('nested', [from({ namespaces: ['a'] }), from({ namespaces: ['b'] })]), [
  ['namespace a', inNamespace('a'), true],
  ['namespace b', inNamespace('b'), true],
  ['wrong namespace', inNamespace('bad'), false],
]);

// rbac.rs rbac_test! cases: one field, three connections
const fieldCases: Array<[string, object, [boolean, boolean, boolean]]> = [
  ['namespaces', from({ namespaces: ['namespace'] }), [false, true, false]],
  ['not_namespaces', from({ notNamespaces: ['namespace'] }), [true, false, true]],
  ['service_accounts', from({ serviceAccounts: ['namespace/account'] }), [false, true, false]],
  ['not_service_accounts', from({ notServiceAccounts: ['namespace/account'] }), [true, false, true]],
  ['principals', from({ principals: ['td/ns/namespace/sa/account'] }), [false, true, false]],
  ['not_principals', from({ notPrincipals: ['td/ns/namespace/sa/account'] }), [true, false, true]],
  ['source_ips', from({ ipBlocks: ['127.0.0.1/32'] }), [true, true, false]],
  ['not_source_ips', from({ notIpBlocks: ['127.0.0.1/32'] }), [false, false, true]],
  ['destination_ips', { when: [{ key: 'destination.ip', values: ['127.0.0.2/32'] }] }, [true, true, false]],
  ['not_destination_ips', { when: [{ key: 'destination.ip', notValues: ['127.0.0.2/32'] }] }, [false, false, true]],
  ['cidr_range', { when: [{ key: 'destination.ip', values: ['127.0.0.1/24'] }] }, [true, true, true]],
  ['destination_ports', { to: [{ operation: { ports: ['8080'] } }] }, [true, true, false]],
  ['not_destination_ports', { to: [{ operation: { notPorts: ['8080'] } }] }, [false, false, true]],
];
for (const [name, rule, [p, t, a]] of fieldCases)
  matches(name, () => allowGlobal(name, [rule]), [
    ['plaintext_conn', plaintext, p],
    ['tls_conn', tls, t],
    ['tls_conn_alt', tlsAlt, a],
  ]);

// rbac.rs string_match: each matcher as a `namespaces` pattern, the matchee as the client's namespace ("" = plaintext: no identity)
const stringCases: Array<[string, string, string, boolean]> = [
  ['exact match', 'foo', 'foo', true],
  ['exact mismatch', 'foo', 'not', false],
  ['exact empty mismatch', 'foo', '', false],
  ['prefix match', 'foo*', 'foobar', true],
  ['prefix mismatch', 'foo*', 'notfoo', false],
  ['prefix empty mismatch', 'foo*', '', false],
  ['suffix match', '*foo', 'barfoo', true],
  ['suffix mismatch', '*foo', 'foonot', false],
  ['suffix empty mismatch', '*foo', '', false],
  ['presence match', '*', 'foo', true],
  ['presence mismatch', '*', '', false],
];
for (const [name, pattern, matchee, result] of stringCases)
  cases.push({ name: `rbac.rs string_match ${name}: ${JSON.stringify(pattern)} vs ${JSON.stringify(matchee)}`, policies: () => [allowGlobal('s', [from({ namespaces: [pattern] })])], conn: matchee === '' ? plaintext : inNamespace(matchee, 8080), ztunnel: result });

// state.rs: workloads ns1 (192.168.0.1) and ns2 (192.168.0.2), a client 192.168.1.1 of cluster.local/ns/default/sa/<account>, port 8080
const client = (account: string, dstUid: 1 | 2): Conn => ({ id: `spiffe://cluster.local/ns/default/sa/${account}`, src: '192.168.1.1', dst: `192.168.0.${dstUid}`, port: 8080 });
const dryRun = { 'istio.io/dry-run': 'true' };
const principal = (account: string): object => from({ principals: [`cluster.local/ns/default/sa/${account}`] });
const logicDenyAllow = (): AuthorizationPolicy[] => [
  policy('ns1', 'wildcard', { action: 'ALLOW', rules: [{}] }, dryRun),
  policy('ns1', 'wildcard-deny', { action: 'DENY', rules: [{}] }, dryRun),
  policy('ns1', 'foo', { action: 'ALLOW', rules: [principal('defaultacct')] }),
  policy('ns1', 'deny', { action: 'DENY', rules: [principal('denyacct')] }),
];
const decidedBy =
  (basis: string, by?: string) =>
  (c: Case, r: L4Request): void => {
    const d = authorize(c.policies(), ROOT, r);
    assert.equal(d.basis, basis);
    if (by !== undefined) assert.equal('policy' in d ? d.policy : undefined, by);
  };
cases.push(
  { name: 'state.rs assert_rbac_logic_deny_allow: ns2 has no policies → allowed (dry-run policies have no effect)', policies: logicDenyAllow, conn: client('not-defaultacct', 2), destination: { namespace: 'ns2' }, ztunnel: true },
  { name: 'state.rs assert_rbac_logic_deny_allow: an ALLOW matches → allowed', policies: logicDenyAllow, conn: client('defaultacct', 1), destination: { namespace: 'ns1' }, ztunnel: true, check: decidedBy('allow-rule', 'ns1/foo') },
  { name: 'state.rs assert_rbac_logic_deny_allow: ALLOW policies, none matches → NotAllowed', policies: logicDenyAllow, conn: client('not-defaultacct', 1), destination: { namespace: 'ns1' }, ztunnel: false, check: decidedBy('no-allow-match') },
  { name: 'state.rs assert_rbac_logic_deny_allow: a DENY matches → ExplicitlyDenied(ns1, deny)', policies: logicDenyAllow, conn: client('denyacct', 1), destination: { namespace: 'ns1' }, ztunnel: false, check: decidedBy('deny-rule', 'ns1/deny') },
  { name: 'state.rs assert_rbac_with_dest_workload_info: no policies → allowed', policies: () => [], conn: client('defaultacct', 1), destination: { namespace: 'ns1' }, ztunnel: true },
);

const withDryRun = (): AuthorizationPolicy[] => [
  policy('ns1', 'real-deny', { action: 'DENY', rules: [principal('denyacct')] }),
  policy('ns1', 'dry-run-deny', { action: 'DENY', rules: [principal('defaultacct'), principal('denyacct')] }, dryRun),
  policy('ns1', 'real-allow', { action: 'ALLOW', rules: [principal('defaultacct')] }),
  policy('ns1', 'dry-run-allow', { action: 'ALLOW', rules: [principal('defaultacct')] }, dryRun),
];
/** ztunnel logs a line per matching dry-run policy; warren reports the dry-run decision, and explain shows each dry-run policy's match. */
const dryRunMatch =
  (policyRef: string) =>
  (c: Case, r: L4Request): void => {
    const e = explainAuthorization(c.policies(), ROOT, r);
    const p = e.evaluated.find((x) => x.policy === policyRef);
    assert.equal(p?.dryRun, true, `${policyRef} is evaluated as a dry run`);
    assert.ok(p.rules.some((rule) => rule.matched), `${policyRef} matches`);
    assert.deepEqual([e.decision.dryRun?.allow, e.decision.dryRun?.basis === 'deny-rule' && e.decision.dryRun.policy], [false, 'ns1/dry-run-deny'], 'enforced, the dry-run DENY would deny');
  };
cases.push(
  { name: 'state.rs assert_rbac_dry_run_with_real_policies: defaultacct → allowed', policies: withDryRun, conn: client('defaultacct', 1), destination: { namespace: 'ns1' }, ztunnel: true, check: decidedBy('allow-rule', 'ns1/real-allow') },
  { name: 'state.rs assert_rbac_dry_run_with_real_policies: "dry-run: deny policy match" ns1/dry-run-deny', policies: withDryRun, conn: client('defaultacct', 1), destination: { namespace: 'ns1' }, ztunnel: true, check: dryRunMatch('ns1/dry-run-deny') },
  { name: 'state.rs assert_rbac_dry_run_with_real_policies: "dry-run: allow policy match" ns1/dry-run-allow', policies: withDryRun, conn: client('defaultacct', 1), destination: { namespace: 'ns1' }, ztunnel: true, check: dryRunMatch('ns1/dry-run-allow') },
);

// state/policy.rs rbac_change_scope: a namespace policy, then the same policy with a workload selector
const scoped = (spec: object): AuthorizationPolicy => policy('default', 'test-policy', { action: 'ALLOW', rules: [from({ namespaces: ['whatever'] })], ...spec });
cases.push(
  { name: 'state/policy.rs rbac_change_scope: Namespace scope applies to the namespace\'s workloads', policies: () => [scoped({})], conn: inNamespace('other', 8080), destination: { namespace: 'default', labels: { app: 'x' } }, ztunnel: false },
  {
    name: 'state/policy.rs rbac_change_scope: changed to WorkloadSelector scope, no longer a namespace policy',
    policies: () => [scoped({ selector: { matchLabels: { app: 'selected' } } })],
    conn: inNamespace('other', 8080),
    destination: { namespace: 'default', labels: { app: 'x' } },
    ztunnel: true,
  },
);

for (const c of cases) {
  test(`ztunnel: ${c.name}`, () => {
    const r: L4Request = {
      source: { ip: c.conn.src, ...(c.conn.id ? { principal: c.conn.id } : {}) },
      destination: { namespace: c.destination?.namespace ?? 'namespace', labels: c.destination?.labels ?? {}, ip: c.conn.dst, port: c.conn.port },
    };
    const d = authorize(c.policies(), ROOT, r);
    assert.equal(d.allow, c.warren?.allow ?? c.ztunnel, d.reason);
    c.check?.(c, r);
  });
}

test(`the ztunnel table has ${cases.length} cases; the differences are the ones the README names`, () => {
  assert.equal(cases.length, 73);
  assert.deepEqual([...new Set(cases.flatMap((c) => (c.warren ? [c.warren.readme] : [])))], ['an HTTP-only DENY denies at L4']);
});
