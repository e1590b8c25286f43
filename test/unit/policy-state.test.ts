import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type CoreV1Event } from '@kubernetes/client-node';
import { startPolicyState, type PolicyState } from '../../src/agent/policy-state.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { eventually, startTestApiServer } from '../helpers/apiserver.js';

const AP = { group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies', namespace: 'demo' };
const invalid = (blocks: string[]) => ({
  apiVersion: 'security.warren.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-typo', namespace: 'demo' },
  spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: blocks } }] }] },
});

test('invalid and HTTP-field policies get one Warning Event per generation, however many node agents see them', async () => {
  const api = await startTestApiServer();
  const states: PolicyState[] = [];
  try {
    const ext = api.kc.makeApiClient(ApiextensionsV1Api);
    for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
    const core = api.kc.makeApiClient(CoreV1Api);
    const custom = api.kc.makeApiClient(CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: 'demo' } } });
    await custom.createNamespacedCustomObject({ ...AP, body: invalid(['10.0.0.0/8', '10.1.0.0/']) });
    await custom.createNamespacedCustomObject({
      ...AP,
      body: { apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'get-only', namespace: 'demo' }, spec: { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] } },
    });

    // Two node agents, as on a two-node cluster: both see both policies.
    const seen: string[] = [];
    for (const node of ['node-1', 'node-2']) {
      const agent = await api.agentClient();
      const state = startPolicyState(agent.api, agent.watch, (msg, fields) => seen.push(`${node} ${msg} ${fields.policy} ${fields.reason ?? ''}`.trimEnd()), () => {}, node);
      states.push(state);
      await state.synced;
    }
    const events = async (): Promise<CoreV1Event[]> => (await core.listNamespacedEvent({ namespace: 'demo' })).items;
    await eventually(async () => (await events()).length >= 2, 'the Events');
    await eventually(() => seen.filter((l) => / AuthorizationPolicy invalid: enforced fail-closed demo\/deny-typo /.test(l)).length === 2, 'both agents reporting the invalid policy');
    // Settled: every agent's create of each Event has been answered (created, or 409 because the
    // other agent's came first). Only then does "exactly two Events" rule out a duplicate.
    const outcome = (node: string, policy: string, reason: string): boolean =>
      seen.some((l) => l === `${node} policy event recorded demo/${policy} ${reason}` || l === `${node} policy event already recorded demo/${policy} ${reason}`);
    await eventually(
      () => ['node-1', 'node-2'].every((n) => outcome(n, 'deny-typo', 'InvalidPolicy') && outcome(n, 'get-only', 'WaypointRequired')),
      'both agents’ Event creates answered',
    );
    assert.equal(seen.filter((l) => / policy event recorded /.test(l)).length, 2, 'one create succeeded per Event; the other agent got 409');

    const byReason = new Map((await events()).map((e) => [e.reason, e]));
    assert.equal((await events()).length, 2, 'one Event per policy problem, not one per agent');
    const bad = byReason.get('InvalidPolicy')!;
    assert.equal(bad.type, 'Warning');
    assert.match(bad.message!, /rules\.0\.from\.0\.source\.ipBlocks\.1: must be an IP address or CIDR block/);
    assert.deepEqual([bad.involvedObject.kind, bad.involvedObject.apiVersion, bad.involvedObject.namespace, bad.involvedObject.name], ['AuthorizationPolicy', 'security.warren.io/v1', 'demo', 'deny-typo']);
    assert.equal(bad.involvedObject.uid, ((await custom.getNamespacedCustomObject({ ...AP, name: 'deny-typo' })) as { metadata: { uid: string } }).metadata.uid);
    assert.equal(bad.source?.component, 'warren-node');
    assert.equal(bad.reportingComponent, 'warren.io/node');
    assert.match(byReason.get('WaypointRequired')!.message!, /rules\[0\]\.to\[0\]\.operation\.methods/);
    // The invalid policy's own status says so: condition Accepted=False, reason Invalid, naming the field.
    type Status = { status?: { conditions?: Array<{ type: string; status: string; reason: string; message: string }> } };
    await eventually(async () => {
      const c = ((await custom.getNamespacedCustomObject({ ...AP, name: 'deny-typo' })) as Status).status?.conditions?.find((x) => x.type === 'Accepted');
      return c?.status === 'False' && c.reason === 'Invalid' && /ipBlocks\.1: must be an IP address or CIDR block/.test(c.message);
    }, 'the Invalid condition on deny-typo');

    // A new generation that is still invalid is a new Event; the old one stays.
    await custom.patchNamespacedCustomObject(
      { ...AP, name: 'deny-typo', body: [{ op: 'replace', path: '/spec/rules/0/from/0/source/ipBlocks', value: ['10.2.0.0/33'] }] },
    );
    await eventually(async () => (await events()).filter((e) => e.reason === 'InvalidPolicy').length === 2, 'the Event of generation 2');
    const latest = (await events()).find((e) => e.reason === 'InvalidPolicy' && /ipBlocks\.0/.test(e.message!));
    assert.ok(latest, 'the new Event names the new bad field');
  } finally {
    await Promise.all(states.map((s) => s.stop()));
    await api.stop();
  }
});
