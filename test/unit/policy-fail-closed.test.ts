import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type CoreV1Event } from '@kubernetes/client-node';
import { startPolicyState, type PolicyState } from '../../src/agent/policy-state.js';
import { authorize, failClosedPolicy, parseAuthorizationPolicy, type AuthorizationPolicy, type L4Request } from '../../src/policy/authorization.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { AUTHORIZATION_POLICY_CRD } from '../../src/policy/crds.js';
import { crdSchema, pruneUnknown } from '../../src/sim/apiserver/field-schema.js';
import { eventually, startTestApiServer } from '../helpers/apiserver.js';

const ROOT = 'warren-system';
const object = (name: string, spec: object, namespace = 'foo', annotations?: Record<string, string>) => ({
  apiVersion: 'security.warren.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
  spec,
});
/** What the node agent enforces for an object: the parsed policy, or its fail-closed stand-in (as policy-state does). */
function enforced(obj: ReturnType<typeof object>): AuthorizationPolicy {
  try {
    return parseAuthorizationPolicy(obj);
  } catch (err) {
    return failClosedPolicy(obj, (err as Error).message)!;
  }
}
const web = { app: 'web' };
const req = (principal: string | undefined, labels: Record<string, string> = web, port = 8080, ip = '10.244.1.5'): L4Request => ({
  source: { ip, ...(principal ? { principal } : {}) },
  destination: { namespace: 'foo', labels, ip: '10.244.2.7', port },
});
const fromDefault = 'spiffe://cluster.local/ns/default/sa/sleep';
const fromBar = 'spiffe://cluster.local/ns/bar/sa/curl';
const crdSpec = (AUTHORIZATION_POLICY_CRD as { spec: { versions: Array<{ schema: { openAPIV3Schema: unknown } }> } }).spec.versions[0]!.schema.openAPIV3Schema;
/** The fields the API server prunes (or, under fieldValidation=Strict, refuses) with the CRD's structural schema. */
const unknownToCrd = (obj: object): string[] => pruneUnknown(crdSchema(crdSpec), obj).unknown;

// Finding 2: a typo must not turn a rule into match-all (or drop a condition) with status Accepted.
const typos: Array<{ name: string; rule: object; field: RegExp; crdField: string }> = [
  { name: 'form: for from:', rule: { form: [{ source: { namespaces: ['default'] } }] }, field: /spec\.rules\.0: Unrecognized key: "form"/, crdField: 'spec.rules[0].form' },
  { name: 'value: for values:', rule: { when: [{ key: 'source.namespace', value: ['default'] }] }, field: /spec\.rules\.0\.when\.0: Unrecognized key: "value"/, crdField: 'spec.rules[0].when[0].value' },
  { name: 'principal: for principals:', rule: { from: [{ source: { principal: ['cluster.local/ns/default/sa/sleep'] } }] }, field: /spec\.rules\.0\.from\.0\.source: Unrecognized key: "principal"/, crdField: 'spec.rules[0].from[0].source.principal' },
  { name: 'port: for ports:', rule: { to: [{ operation: { port: ['8080'] } }] }, field: /spec\.rules\.0\.to\.0\.operation: Unrecognized key: "port"/, crdField: 'spec.rules[0].to[0].operation.port' },
];

for (const t of typos) {
  test(`a typo (${t.name}) is refused by the CRD schema and the parser, and the policy never allows all`, () => {
    const allow = object('allow-default', { selector: { matchLabels: web }, action: 'ALLOW', rules: [t.rule] });
    assert.deepEqual(
      unknownToCrd(allow),
      [t.crdField],
      'the API server (structural schema) refuses or prunes the unknown field',
    );
    assert.throws(() => parseAuthorizationPolicy(allow), t.field);
    for (const action of ['ALLOW', 'DENY']) {
      const p = enforced(object('typo', { selector: { matchLabels: web }, action, rules: [t.rule] }));
      for (const who of [fromDefault, fromBar, undefined]) {
        const d = authorize([p], ROOT, req(who));
        assert.equal(d.allow, false, `${action} with a typo: ${who ?? 'plaintext'} is denied, not allowed by a match-all rule`);
        assert.equal(d.basis, 'invalid-policy');
        assert.match(d.reason, /is invalid \(spec\.rules\.0.*Unrecognized key/);
      }
      assert.equal(authorize([p], ROOT, req(fromBar, { app: 'db' })).allow, true, 'a workload the selector does not pick is unaffected');
    }
  });
}

test('unknown fields elsewhere in the spec and Istio validation rules make the policy invalid, naming the field', () => {
  const bad: Array<[object, RegExp]> = [
    [{ selektor: { matchLabels: web } }, /spec: Unrecognized key: "selektor"/],
    [{ selector: { matchlabels: web } }, /spec\.selector: Unrecognized key: "matchlabels"/],
    [{ rules: [{ from: [{ source: { principals: [''] } }] }] }, /spec\.rules\.0\.from\.0\.source\.principals\.0: empty value not allowed/],
    [{ rules: [{ from: [{ source: { principals: [] } }] }] }, /spec\.rules\.0\.from\.0\.source: must not be empty/],
    [{ rules: [{ to: [{ operation: {} }] }] }, /spec\.rules\.0\.to\.0\.operation: must not be empty/],
    [{ rules: [{ when: [{ key: 'source.namespace' }] }] }, /spec\.rules\.0\.when\.0: at least one of values or notValues/],
    [{ rules: [{ when: [{ key: 'souce.ip', values: ['10.0.0.1'] }] }] }, /spec\.rules\.0\.when\.0\.key: unknown attribute "souce\.ip"/],
    [{ rules: [{ when: [{ key: 'destination.port', values: ['http'] }] }] }, /when\.0\.values\.0: "http" is not a port/],
    [{ rules: [{ to: [{ operation: { ports: ['80000'] } }] }] }, /operation\.ports\.0: must be a port number/],
    [{ rules: [{ from: [{ source: { serviceAccounts: ['sleep'], namespaces: ['default'] } }] }] }, /serviceAccounts: cannot be set with namespaces or principals/],
  ];
  for (const [spec, field] of bad) assert.throws(() => parseAuthorizationPolicy(object('x', spec)), field, JSON.stringify(spec));
  assert.throws(() => parseAuthorizationPolicy(object('x', {}, 'foo', { 'istio.io/dry-run': 'yes' })), /istio\.io\/dry-run: "yes" is not true or false/);
});

test('principals: [""] never lets a plaintext client in (refused; the stand-in denies)', () => {
  const p = enforced(object('allow-empty', { rules: [{ from: [{ source: { principals: [''] } }] }] }));
  assert.equal(authorize([p], ROOT, req(undefined)).allow, false);
  const when = enforced(object('allow-empty-when', { rules: [{ when: [{ key: 'source.principal', values: [''] }] }] }));
  assert.equal(authorize([when], ROOT, req(undefined)).allow, false);
});

// Finding 4: Istio's semantics.
test('an empty list is "not set": from: [] and principals: [] next to another field do not disarm a DENY', () => {
  const denyAll = enforced(object('deny', { action: 'DENY', rules: [{ from: [] }] }));
  assert.equal(authorize([denyAll], ROOT, req(fromDefault)).allow, false, 'from: [] is a rule without from: it matches every source');
  const denyBar = enforced(object('deny-bar', { action: 'DENY', rules: [{ from: [{ source: { principals: [], namespaces: ['bar'] } }], to: [], when: [] }] }));
  assert.equal(authorize([denyBar], ROOT, req(fromBar)).allow, false, 'principals: [] adds no condition; namespaces still decides');
  assert.equal(authorize([denyBar], ROOT, req(fromDefault)).allow, true);
  const allow = enforced(object('allow', { rules: [{ to: [{ operation: { ports: ['8080'], notPorts: [] } }] }] }));
  assert.equal(authorize([allow], ROOT, req(fromBar, web, 8080)).allow, true, 'notPorts: [] is no condition');
  assert.equal(authorize([allow], ROOT, req(fromBar, web, 9090)).allow, false);
});

test('serviceAccounts and notServiceAccounts: NAME is in the policy namespace, NS/NAME elsewhere; plaintext has none', () => {
  const p = enforced(object('sa', { rules: [{ from: [{ source: { serviceAccounts: ['web-client', 'default/sleep'] } }] }] }));
  assert.equal(authorize([p], ROOT, req(fromDefault)).allow, true, 'default/sleep');
  assert.equal(authorize([p], ROOT, req('spiffe://cluster.local/ns/foo/sa/web-client')).allow, true, 'web-client in the policy namespace foo');
  assert.equal(authorize([p], ROOT, req('spiffe://cluster.local/ns/bar/sa/web-client')).allow, false, 'web-client of another namespace');
  assert.equal(authorize([p], ROOT, req('spiffe://other.domain/ns/default/sa/sleep')).allow, true, 'the trust domain is not compared (as ztunnel)');
  assert.equal(authorize([p], ROOT, req(undefined)).allow, false);
  const not = enforced(object('not-sa', { action: 'DENY', rules: [{ from: [{ source: { notServiceAccounts: ['default/sleep'] } }] }] }));
  assert.equal(authorize([not], ROOT, req(fromDefault)).allow, true);
  assert.equal(authorize([not], ROOT, req(fromBar)).allow, false);
  assert.equal(authorize([not], ROOT, req(undefined)).allow, false, 'plaintext is not default/sleep: denied');
});

test('istio.io/dry-run: evaluated and reported, never enforced; the dry-run decision is what enforcing it would do', () => {
  const dryDeny = enforced(object('dry-deny', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bar'] } }] }] }, 'foo', { 'istio.io/dry-run': 'true' }));
  assert.equal(dryDeny.dryRun, true);
  const d = authorize([dryDeny], ROOT, req(fromBar));
  assert.equal(d.allow, true, 'a dry-run DENY does not deny');
  assert.deepEqual([d.dryRun?.allow, d.dryRun?.basis], [false, 'deny-rule'], 'but would');
  assert.equal(authorize([dryDeny], ROOT, req(fromDefault)).dryRun?.allow, true);
  const dryAllow = enforced(object('dry-allow', { rules: [{ from: [{ source: { namespaces: ['default'] } }] }] }, 'foo', { 'istio.io/dry-run': 'true' }));
  const a = authorize([dryAllow], ROOT, req(fromBar));
  assert.deepEqual([a.allow, a.basis], [true, 'no-allow-policy'], 'a dry-run ALLOW does not make ALLOW policies apply');
  assert.equal(a.dryRun?.allow, false);
  assert.equal(authorize([dryAllow], ROOT, req(fromBar, { app: 'db' }, 8080)).dryRun?.allow, false);
  assert.equal(authorize([enforced(object('dry', { selector: { matchLabels: { app: 'db' } }, rules: [] }, 'foo', { 'istio.io/dry-run': 'true' }))], ROOT, req(fromBar)).dryRun, undefined, 'no dry-run result when none applies');
  const invalidDry = enforced(object('dry-typo', { rules: [{ form: [] }] }, 'foo', { 'istio.io/dry-run': 'true' }));
  assert.deepEqual([authorize([invalidDry], ROOT, req(fromBar)).allow, authorize([invalidDry], ROOT, req(fromBar)).dryRun?.allow], [true, false], 'an invalid dry-run policy stays a dry run');
});

test('targetRefs policies are for a waypoint: the node agent does not apply them as namespace policies', () => {
  const targeted = enforced(object('waypoint-deny', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], action: 'DENY', rules: [{}] }));
  assert.equal(targeted.targeted, true);
  assert.equal(authorize([targeted], ROOT, req(fromBar)).allow, true);
  const single = enforced(object('waypoint-allow', { targetRef: { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }, rules: [] }));
  assert.equal(authorize([single], ROOT, req(fromBar)).allow, true, 'an allow-nothing for the waypoint does not deny at the node');
  assert.throws(() => parseAuthorizationPolicy(object('both', { targetRefs: [{ kind: 'Service', name: 'web' }], selector: { matchLabels: web } })), /cannot be set with targetRef/);
});

test('remoteIpBlocks and when remote.ip are HTTP attributes: an ALLOW rule matches nothing, a DENY its L4 part', () => {
  const allow = enforced(object('allow-remote', { rules: [{ from: [{ source: { remoteIpBlocks: ['10.244.1.0/24'] } }] }] }));
  assert.deepEqual(allow.httpFields, ['rules[0].from[0].source.remoteIpBlocks']);
  assert.equal(authorize([allow], ROOT, req(fromBar)).allow, false, 'the client IP is 10.244.1.5, but L4 cannot know the remote (forwarded) IP');
  const when = enforced(object('allow-remote-when', { rules: [{ when: [{ key: 'remote.ip', values: ['10.244.1.0/24'] }] }] }));
  assert.deepEqual(when.httpFields, ['rules[0].when[0].key=remote.ip']);
  assert.equal(authorize([when], ROOT, req(fromBar)).allow, false);
  const deny = enforced(object('deny-remote', { action: 'DENY', rules: [{ from: [{ source: { notRemoteIpBlocks: ['192.0.2.0/24'] } }], to: [{ operation: { ports: ['8080'] } }] }] }));
  assert.equal(authorize([deny], ROOT, req(fromBar, web, 8080)).allow, false);
  assert.equal(authorize([deny], ROOT, req(fromBar, web, 9090)).allow, true);
});

// Finding 3 through the agent's policy state against the API server: an invalid update denies, a fix restores.
test('an invalid update of an ALLOW policy makes its workloads deny everything until fixed (not the last good version)', async () => {
  const api = await startTestApiServer();
  let state: PolicyState | undefined;
  try {
    const ext = api.kc.makeApiClient(ApiextensionsV1Api);
    for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
    const core = api.kc.makeApiClient(CoreV1Api);
    const custom = api.kc.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: 'foo' } } });
    const AP = { group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies', namespace: 'foo' };
    await custom.createNamespacedCustomObject({ ...AP, body: object('allow-default', { selector: { matchLabels: web }, rules: [{ from: [{ source: { namespaces: ['default'] } }] }] }) });
    await custom.createNamespacedCustomObject({ ...AP, body: object('waypoint-deny', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], action: 'DENY', rules: [{}] }) });
    await assert.rejects(
      custom.createNamespacedCustomObject({ ...AP, fieldValidation: 'Strict', body: object('typo', { rules: [{ form: [{ source: { namespaces: ['bar'] } }] }] }) }),
      /form/,
      'the API server refuses the unknown field under fieldValidation=Strict (what kubectl sends)',
    );

    const agent = await api.agentClient();
    state = startPolicyState(agent.api, agent.watch, () => {}, () => {}, 'node-1');
    await state.synced;
    const decide = (principal: string | undefined, labels = web) => authorize(state!.authorizationPolicies(), ROOT, req(principal, labels));
    await eventually(() => decide(fromDefault).allow && !decide(fromBar).allow, 'the valid policy in force');
    assert.equal(decide(fromBar, { app: 'db' }).allow, true, 'the targetRefs DENY-all is not applied by the node agent');

    // Passes the schema, fails warren's (and Istio's) validation: an empty value.
    await custom.patchNamespacedCustomObject({ ...AP, name: 'allow-default', body: [{ op: 'replace', path: '/spec/rules/0/from/0/source/namespaces', value: ['default', ''] }] });
    await eventually(() => !decide(fromDefault).allow, 'the invalid update to deny');
    assert.equal(decide(fromDefault).basis, 'invalid-policy');
    assert.equal(decide(undefined).allow, false);
    assert.equal(decide(fromBar, { app: 'db' }).allow, true, 'workloads the selector does not pick are unaffected');

    const status = async (name: string) => ((await custom.getNamespacedCustomObject({ ...AP, name })) as { status?: { conditions?: Array<{ reason: string; message: string }> } }).status?.conditions?.[0];
    await eventually(async () => (await status('allow-default'))?.reason === 'Invalid', 'the Invalid condition');
    assert.match((await status('allow-default'))!.message, /spec\.rules\.0\.from\.0\.source\.namespaces\.1: empty value not allowed; it denies every connection to the workloads it selects until fixed/);
    assert.equal(await status('waypoint-deny'), undefined, 'the node agent leaves the status of a targetRefs policy to the waypoint');
    const events = async (): Promise<CoreV1Event[]> => (await core.listNamespacedEvent({ namespace: 'foo' })).items;
    await eventually(async () => (await events()).some((e) => e.reason === 'InvalidPolicy' && /namespaces\.1/.test(e.message ?? '')), 'the InvalidPolicy Event naming the field');

    await custom.patchNamespacedCustomObject({ ...AP, name: 'allow-default', body: [{ op: 'replace', path: '/spec/rules/0/from/0/source/namespaces', value: ['default'] }] });
    await eventually(() => decide(fromDefault).allow && !decide(fromBar).allow, 'the fixed policy in force again');
    await eventually(async () => (await status('allow-default'))?.reason === 'Accepted', 'Accepted again');
  } finally {
    await state?.stop();
    await api.stop();
  }
});
