import type { KubernetesObject } from '@kubernetes/client-node';
import { coalesced } from '../agent/coalesced.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import type { KubeApi } from '../k8s/lean/api-client.js';
import { statusPath } from '../k8s/lean/paths.js';
import type { ResilientInformer } from '../k8s/resilient-informer.js';
import type { Watcher } from '../k8s/watcher.js';
import type { Gateway, RouteTable } from '../waypoint/route-table.js';
import { NETWORKING_GROUP, NETWORKING_VERSION } from './crds.js';
import { parseDestinationRule, type DestinationRule } from './destination-rule.js';
import { buildResilienceTable, type ResilienceTable } from './resilience-table.js';
import { parseBackendTrafficPolicy, type BackendTrafficPolicy } from './traffic-policy.js';
import { parseVirtualService, type VirtualService } from './virtual-service.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

export interface ResilienceState {
  table(): ResilienceTable;
  synced: Promise<void>;
  stop(): Promise<void>;
}

interface Kind<T extends { generation: number }> {
  plural: string;
  kind: 'DestinationRule' | 'VirtualService' | 'BackendTrafficPolicy';
  parse(o: unknown): T;
}

/**
 * DestinationRules, VirtualServices and BackendTrafficPolicies as the
 * waypoint applies them (docs/architecture.md §15): watched, parsed, compiled
 * into one ResilienceTable on every change. An object that stops parsing
 * keeps its last good version in force and its status (condition Accepted,
 * False) names the field; a conflicting one is reported the same way.
 */
export function startResilienceState(api: KubeApi, watchOf: Watcher, gateway: Gateway, clusterDomain: string, inputs: { routes(): RouteTable; index(): ClusterIndex }, log: Log): ResilienceState {
  const reported = new Map<string, string>();
  const lastGood = new Map<string, unknown>();
  let table = buildResilienceTable({ destinationRules: [], virtualServices: [], trafficPolicies: [] }, inputs.routes(), () => [], gateway, clusterDomain);

  const writeStatus = (plural: string, obj: KubernetesObject, accepted: boolean, reason: string, message: string): void => {
    const m = obj.metadata!;
    const id = `${plural}/${m.namespace}/${m.name}`;
    const condition = { type: 'Accepted', status: accepted ? 'True' : 'False', reason, message, ...(m.generation !== undefined ? { observedGeneration: m.generation } : {}) };
    const key = JSON.stringify(condition);
    if (reported.get(id) === key) return;
    reported.set(id, key);
    void api
      .mergePatch(statusPath({ group: NETWORKING_GROUP, version: NETWORKING_VERSION }, plural, m.namespace!, m.name!), { status: { conditions: [{ ...condition, lastTransitionTime: new Date().toISOString() }] } })
      .catch((err: Error) => {
        reported.delete(id);
        log('status update failed', { object: id, err: err.message });
      });
  };

  const compile = <T extends { generation: number }>(informer: ResilientInformer<KubernetesObject>, k: Kind<T>, bad: Map<string, { obj: KubernetesObject; message: string }>): T[] =>
    informer.list().flatMap((obj) => {
      const id = `${k.plural}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
      try {
        const parsed = k.parse(obj);
        lastGood.set(id, parsed);
        return [parsed];
      } catch (err) {
        const kept = lastGood.get(id) as T | undefined;
        const message = `${(err as Error).message}; ${kept ? `the waypoint keeps applying generation ${kept.generation} (the last valid one)` : 'not applied'}`;
        log(`${k.kind} invalid`, { object: id, reason: message });
        bad.set(id, { obj, message });
        return kept ? [kept] : [];
      }
    });

  const DR: Kind<DestinationRule> = { plural: 'destinationrules', kind: 'DestinationRule', parse: parseDestinationRule };
  const VS: Kind<VirtualService> = { plural: 'virtualservices', kind: 'VirtualService', parse: parseVirtualService };
  const BTP: Kind<BackendTrafficPolicy> = { plural: 'backendtrafficpolicies', kind: 'BackendTrafficPolicy', parse: parseBackendTrafficPolicy };

  let compiledFor: { routes: RouteTable; index: ClusterIndex } | undefined;
  const compileAll = (): void => {
    compiledFor = { routes: inputs.routes(), index: inputs.index() };
    const bad = new Map<string, { obj: KubernetesObject; message: string }>();
    const all = [...destinationRules.list().map((o) => [DR.plural, o] as const), ...virtualServices.list().map((o) => [VS.plural, o] as const), ...trafficPolicies.list().map((o) => [BTP.plural, o] as const)];
    const live = new Set(all.map(([p, o]) => `${p}/${o.metadata?.namespace}/${o.metadata?.name}`));
    for (const id of lastGood.keys()) if (!live.has(id)) lastGood.delete(id);
    const index = compiledFor.index;
    const ports = (s: { namespace: string; name: string }): number[] => index.services().filter((e) => e.namespace === s.namespace && e.name === s.name).map((e) => e.port);
    table = buildResilienceTable(
      { destinationRules: compile(destinationRules, DR, bad), virtualServices: compile(virtualServices, VS, bad), trafficPolicies: compile(trafficPolicies, BTP, bad) },
      compiledFor.routes,
      ports,
      gateway,
      clusterDomain,
    );
    const rejected = new Map(table.rejected.map((r) => [`${r.kind === 'DestinationRule' ? DR.plural : r.kind === 'VirtualService' ? VS.plural : BTP.plural}/${r.namespace}/${r.name}`, r]));
    for (const [plural, obj] of all) {
      const id = `${plural}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
      const invalid = bad.get(id);
      const r = rejected.get(id);
      if (invalid) writeStatus(plural, obj, false, 'Invalid', invalid.message);
      else if (r) writeStatus(plural, obj, false, r.reason, r.message);
      else writeStatus(plural, obj, true, 'Accepted', `applied by waypoint ${gateway.namespace}/${gateway.name}`);
    }
  };
  const rebuild = coalesced(20, compileAll);

  const watch = (plural: string): ResilientInformer<KubernetesObject> => watchOf({ path: `/apis/${NETWORKING_GROUP}/${NETWORKING_VERSION}/${plural}`, onChange: rebuild });
  const destinationRules = watch(DR.plural);
  const virtualServices = watch(VS.plural);
  const trafficPolicies = watch(BTP.plural);
  const informers = [destinationRules, virtualServices, trafficPolicies];
  return {
    table() {
      // an HTTPRoute or Service that appeared can conflict with a VirtualService: recompile on the request that sees it
      if (compiledFor !== undefined && (compiledFor.routes !== inputs.routes() || compiledFor.index !== inputs.index())) compileAll();
      return table;
    },
    synced: Promise.all(informers.map((i) => i.synced)).then(compileAll),
    async stop() {
      rebuild.cancel();
      await Promise.all(informers.map((i) => i.stop()));
    },
  };
}
