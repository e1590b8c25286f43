import { ApiError } from '../apiserver/api-error.js';
import type { ApiObjects } from '../apiserver/objects.js';
import type { KubeObject } from '../apiserver/store.js';
import { reconcileDeployment } from './deployments.js';
import { MANAGED_BY, desiredSlice, sliceChanged } from './endpoint-slices.js';
import { schedule } from './scheduler.js';

export interface ControllerManager {
  stop(): void;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * Runs the simulator's controllers against the API server's objects. They
 * are level-triggered: any change schedules one pass that compares every
 * object with what it should be, so a missed or coalesced event costs
 * nothing, and a failed write (409 from a concurrent writer) is retried by
 * the next pass.
 */
export function startControllerManager(objects: ApiObjects, log: Log, resyncMs = 2000): ControllerManager {
  const type = (group: string, resource: string) => objects.registry.lookup(group, 'v1', resource);
  const t = {
    namespaces: type('', 'namespaces'),
    serviceaccounts: type('', 'serviceaccounts'),
    pods: type('', 'pods'),
    nodes: type('', 'nodes'),
    services: type('', 'services'),
    deployments: type('apps', 'deployments'),
    slices: type('discovery.k8s.io', 'endpointslices'),
  };
  let cursor = 0;

  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      // Conflicts and races with deletes are normal; the next pass settles them.
      if (err.code !== 409 && err.code !== 404) log('controller write failed', { what, err: err.message });
    }
  };

  const serviceAccounts = (): void => {
    for (const ns of objects.store.list(t.namespaces)) {
      if (objects.store.find(t.serviceaccounts, ns.metadata.name, 'default') === undefined) {
        attempt(`serviceaccount ${ns.metadata.name}/default`, () => objects.create(t.serviceaccounts, ns.metadata.name, { metadata: { name: 'default' } }));
      }
    }
  };

  const scheduler = (): void => {
    const result = schedule(objects.store.list(t.pods), objects.store.list(t.nodes), cursor);
    cursor = result.cursor;
    for (const b of result.bindings) {
      attempt(`bind ${b.namespace}/${b.pod}`, () => {
        const pod = objects.get(t.pods, b.namespace, b.pod);
        objects.update(t.pods, b.namespace, b.pod, { ...pod, spec: { ...pod.spec, nodeName: b.node } });
        const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        const latest = objects.get(t.pods, b.namespace, b.pod);
        const conditions = [...((latest.status?.conditions ?? []) as Array<{ type: string }>).filter((c) => c.type !== 'PodScheduled'), { type: 'PodScheduled', status: 'True', lastTransitionTime: now }];
        objects.update(t.pods, b.namespace, b.pod, { ...latest, status: { ...latest.status, conditions } }, 'status');
      });
    }
  };

  const deployments = (): void => {
    const pods = objects.store.list(t.pods);
    for (const d of objects.store.list(t.deployments)) {
      const owned = pods.filter((p) => (p.metadata.ownerReferences as Array<{ uid: string }> | undefined)?.some((r) => r.uid === d.metadata.uid));
      const actions = reconcileDeployment(d, owned);
      for (const name of actions.delete) attempt(`delete pod ${d.metadata.namespace}/${name}`, () => objects.delete(t.pods, d.metadata.namespace, name));
      for (const pod of actions.create) attempt(`create pod for ${d.metadata.namespace}/${d.metadata.name}`, () => objects.create(t.pods, d.metadata.namespace, pod));
      if (JSON.stringify(d.status ?? {}) !== JSON.stringify(actions.status)) {
        attempt(`status of ${d.metadata.namespace}/${d.metadata.name}`, () => objects.update(t.deployments, d.metadata.namespace, d.metadata.name, { ...d, status: actions.status }, 'status'));
      }
    }
  };

  const endpointSlices = (): void => {
    const pods = objects.store.list(t.pods);
    const wanted = new Set<string>();
    for (const svc of objects.store.list(t.services)) {
      const desired = desiredSlice(svc, pods);
      if (desired === undefined) continue;
      const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
      wanted.add(key);
      const current = objects.store.find(t.slices, svc.metadata.namespace, svc.metadata.name);
      if (current === undefined) attempt(`create slice ${key}`, () => objects.create(t.slices, svc.metadata.namespace, desired));
      else if (sliceChanged(current, desired)) {
        attempt(`update slice ${key}`, () => objects.update(t.slices, svc.metadata.namespace, svc.metadata.name, { ...desired, metadata: { ...current.metadata, labels: desired.metadata.labels } } as KubeObject));
      }
    }
    for (const slice of objects.store.list(t.slices)) {
      const key = `${slice.metadata.namespace}/${slice.metadata.name}`;
      if (slice.metadata.labels?.['endpointslice.kubernetes.io/managed-by'] === MANAGED_BY && !wanted.has(key) && slice.metadata.name !== 'kubernetes') {
        attempt(`delete slice ${key}`, () => objects.delete(t.slices, slice.metadata.namespace, slice.metadata.name));
      }
    }
  };

  let pending: NodeJS.Immediate | undefined;
  const pass = (): void => {
    pending = undefined;
    try {
      serviceAccounts();
      scheduler();
      deployments();
      endpointSlices();
    } catch (err) {
      log('controller pass failed', { err: (err as Error).stack });
    }
  };
  const trigger = (): void => {
    // Writes made by a pass trigger the next one; one queued pass covers them all.
    if (pending === undefined) pending = setImmediate(pass);
  };
  const unsubscribe = objects.store.subscribe(trigger);
  const resync = setInterval(trigger, resyncMs);
  trigger();
  return {
    stop() {
      unsubscribe();
      clearInterval(resync);
      if (pending !== undefined) clearImmediate(pending);
    },
  };
}
