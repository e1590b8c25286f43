import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../../src/sim/apiserver/api-error.js';
import { ApiObjects } from '../../../src/sim/apiserver/objects.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../../src/sim/apiserver/patch.js';
import { Registry } from '../../../src/sim/apiserver/registry.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from '../../../src/sim/apiserver/selectors.js';
import { Store } from '../../../src/sim/apiserver/store.js';
import { project } from '../../../src/sim/apiserver/watch-stream.js';

function cluster(historyLimit?: number): { o: ApiObjects; t: (resource: string, group?: string) => ReturnType<Registry['lookup']> } {
  const registry = new Registry();
  const o = new ApiObjects(registry, new Store(historyLimit));
  const t = (resource: string, group = ''): ReturnType<Registry['lookup']> => registry.lookup(group, 'v1', resource);
  o.create(t('namespaces'), undefined, { metadata: { name: 'demo' } });
  return { o, t };
}

const apiError = (code: number, reason?: string) => (err: unknown) => {
  assert.ok(err instanceof ApiError, `expected an ApiError, got ${String(err)}`);
  assert.equal(err.code, code);
  if (reason) assert.equal(err.reason, reason);
  return true;
};

test('label selectors: equality, set-based, existence; bad keys are 400', () => {
  const labels = { app: 'web', tier: 'front', 'istio.io/dataplane-mode': 'ambient' };
  const cases: Array<[string, boolean]> = [
    ['app=web', true],
    ['app==web,tier=front', true],
    ['app!=web', false],
    ['app in (web, api)', true],
    ['tier notin (front)', false],
    ['istio.io/dataplane-mode', true],
    ['!missing', true],
    ['!app', false],
    ['app=web,missing=x', false],
  ];
  for (const [sel, want] of cases) assert.equal(matchesLabels(parseLabelSelector(sel), labels), want, sel);
  assert.equal(matchesLabels(parseLabelSelector(''), undefined), true);
  assert.throws(() => parseLabelSelector('-bad=x'), apiError(400));
});

test('field selectors: spec.nodeName, metadata.name/namespace; unsupported fields are 400', () => {
  const pod = { metadata: { name: 'a', namespace: 'demo' }, spec: { nodeName: 'node-1' } };
  assert.equal(matchesFields(parseFieldSelector('spec.nodeName=node-1'), pod), true);
  assert.equal(matchesFields(parseFieldSelector('spec.nodeName!=node-1'), pod), false);
  assert.equal(matchesFields(parseFieldSelector('metadata.name=a,metadata.namespace=demo'), pod), true);
  assert.equal(matchesFields(parseFieldSelector('spec.nodeName='), { metadata: { name: 'b' }, spec: {} }), true, 'unscheduled pods have an empty nodeName');
  assert.throws(() => parseFieldSelector('spec.hostname=x'), apiError(400));
});

test('patches: merge deletes with null, strategic merges lists by key, JSON patch test failure is 422', () => {
  assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 } }), { a: 1, b: { d: 3, e: 4 } });
  const pod = { spec: { containers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'y' }] } };
  assert.deepEqual(strategicMergePatch(pod, { spec: { containers: [{ name: 'b', image: 'z' }] } }), {
    spec: { containers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'z' }] },
  });
  assert.deepEqual(strategicMergePatch(pod, { spec: { containers: [{ name: 'a', $patch: 'delete' }] } }), { spec: { containers: [{ name: 'b', image: 'y' }] } });
  assert.deepEqual(jsonPatch({ a: 1 }, [{ op: 'add', path: '/b', value: 2 }]), { a: 1, b: 2 });
  assert.throws(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), apiError(422));
  assert.throws(() => jsonPatch({ a: 1 }, { op: 'add' }), apiError(400));
});

test('optimistic concurrency: a stale resourceVersion is 409; generation moves with spec only', () => {
  const { o, t } = cluster();
  const svc = o.create(t('services'), 'demo', { metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } });
  assert.equal(svc.metadata.generation, 1);
  assert.match(svc.spec.clusterIP, /^10\.96\.\d+\.\d+$/);
  assert.equal(svc.spec.ports[0].targetPort, 80, 'targetPort defaults to port');
  const labelled = o.patch(t('services'), 'demo', 'web', 'merge', { metadata: { labels: { a: 'b' } } });
  assert.equal(labelled.metadata.generation, 1, 'metadata changes keep the generation');
  const respec = o.update(t('services'), 'demo', 'web', { ...labelled, spec: { ...labelled.spec, ports: [{ port: 81 }] } });
  assert.equal(respec.metadata.generation, 2);
  assert.equal(respec.spec.clusterIP, svc.spec.clusterIP, 'clusterIP is immutable');
  assert.throws(() => o.update(t('services'), 'demo', 'web', labelled), apiError(409, 'Conflict'));
  assert.throws(() => o.create(t('services'), 'demo', { metadata: { name: 'web' } }), apiError(409, 'AlreadyExists'));
});

test('invalid objects: bad names and missing namespaces are refused with the field named', () => {
  const { o, t } = cluster();
  assert.throws(() => o.create(t('pods'), 'demo', { metadata: { name: 'Bad_Name' } }), (err) => apiError(422, 'Invalid')(err) && /metadata\.name/.test((err as Error).message));
  assert.throws(() => o.create(t('pods'), 'nowhere', { metadata: { name: 'p' } }), apiError(404));
  assert.throws(() => o.create(t('pods'), 'demo', { kind: 'Service', metadata: { name: 'p' } }), apiError(400));
  assert.throws(() => o.create(t('pods'), 'demo', { metadata: { name: 'p', labels: { a: 1 } } }), apiError(422));
  assert.throws(() => o.create(t('pods'), 'demo', []), apiError(400));
});

test('CRDs: their kinds are served, schemas checked for required fields and types, deletion removes the objects', () => {
  const { o } = cluster();
  const crdType = o.registry.lookup('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
  o.create(crdType, undefined, {
    metadata: { name: 'widgets.example.com' },
    spec: {
      group: 'example.com',
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', required: ['size'], properties: { size: { type: 'integer' }, mode: { type: 'string', enum: ['a', 'b'] } } } },
            },
          },
        },
      ],
    },
  });
  const widgets = o.registry.lookup('example.com', 'v1', 'widgets');
  o.create(widgets, 'demo', { metadata: { name: 'w' }, spec: { size: 3, mode: 'a' } });
  assert.throws(() => o.create(widgets, 'demo', { metadata: { name: 'x' }, spec: { mode: 'a' } }), (err) => apiError(422)(err) && /spec\.size: Required value/.test((err as Error).message));
  assert.throws(() => o.create(widgets, 'demo', { metadata: { name: 'y' }, spec: { size: 'big' } }), (err) => apiError(422)(err) && /spec\.size/.test((err as Error).message));
  assert.throws(() => o.create(widgets, 'demo', { metadata: { name: 'z' }, spec: { size: 1, mode: 'c' } }), (err) => apiError(422)(err) && /Unsupported value/.test((err as Error).message));
  o.delete(crdType, undefined, 'widgets.example.com');
  assert.throws(() => o.registry.lookup('example.com', 'v1', 'widgets'), apiError(404));
});

test('deletes cascade: a namespace empties itself, owners take their dependents', () => {
  const { o, t } = cluster();
  const deploy = o.create(o.registry.lookup('apps', 'v1', 'deployments'), 'demo', { metadata: { name: 'd' }, spec: { selector: { matchLabels: { a: 'b' } } } });
  o.create(t('pods'), 'demo', { metadata: { name: 'p', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'd', uid: deploy.metadata.uid }] } });
  o.create(t('pods'), 'demo', { metadata: { name: 'q' } });
  o.delete(o.registry.lookup('apps', 'v1', 'deployments'), 'demo', 'd');
  assert.deepEqual(o.list(t('pods'), 'demo').items.map((p) => p.metadata.name), ['q']);
  o.delete(t('namespaces'), undefined, 'demo');
  assert.equal(o.list(t('pods'), 'demo').items.length, 0);
});

test('watch history: resuming from a recent version replays, an expired one is 410 Gone', () => {
  const { o, t } = cluster(3);
  const start = o.store.resourceVersion;
  for (let i = 0; i < 5; i++) o.create(t('configmaps'), 'demo', { metadata: { name: `c${i}` } });
  assert.throws(() => o.store.eventsSince(start), apiError(410, 'Expired'));
  const recent = o.store.eventsSince(o.store.resourceVersion - 2);
  assert.deepEqual(recent.map((e) => e.object.metadata.name), ['c3', 'c4']);
});

test('selector-filtered watches see objects enter and leave the selection', () => {
  const { o, t } = cluster();
  const events: string[] = [];
  const req = { type: t('pods'), namespace: 'demo', labels: parseLabelSelector('app=web'), fields: [] };
  o.store.subscribe((ev) => {
    const out = project(ev, req);
    if (out) events.push(`${out.type}:${out.object.metadata.name}`);
  });
  o.create(t('pods'), 'demo', { metadata: { name: 'p' } });
  o.patch(t('pods'), 'demo', 'p', 'merge', { metadata: { labels: { app: 'web' } } });
  o.patch(t('pods'), 'demo', 'p', 'merge', { metadata: { annotations: { x: 'y' } } });
  o.patch(t('pods'), 'demo', 'p', 'merge', { metadata: { labels: { app: null } } });
  o.create(t('configmaps'), 'demo', { metadata: { name: 'c', labels: { app: 'web' } } });
  assert.deepEqual(events, ['ADDED:p', 'MODIFIED:p', 'DELETED:p']);
});
