import type { KubernetesObject } from '@kubernetes/client-node';
import { KubeApiError, type KubeApi } from '../k8s/lean/api-client.js';
import { warningEvent } from '../k8s/warning-event.js';
import type { ResilientInformer } from '../k8s/resilient-informer.js';
import type { Watcher } from '../k8s/watcher.js';
import { failClosedPolicy, parseAuthorizationPolicy, type AuthorizationPolicy } from '../policy/authorization.js';
import { failClosedPeerAuthentication, parsePeerAuthentication, type PeerAuthentication } from '../policy/peer-authentication.js';
import { coalesced } from './coalesced.js';

export interface PolicyState {
  peerAuthentications(): readonly PeerAuthentication[];
  authorizationPolicies(): readonly AuthorizationPolicy[];
  synced: Promise<void>;
  stop(): Promise<void>;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;
type Condition = { type: string; status: 'True' | 'False'; reason: string; message: string };

const GROUP = { group: 'security.warren.io', version: 'v1' };
/** Event reasons, by the condition reason they report. */
const EVENT_REASON: Record<string, string> = { Invalid: 'InvalidPolicy', WaypointRequired: 'WaypointRequired' };

/**
 * security.warren.io policies, watched and validated (docs/architecture.md §6). An
 * invalid object never widens access: an AuthorizationPolicy stands in as a
 * DENY of everything it selects, a PeerAuthentication as STRICT (see
 * failClosedPolicy, failClosedPeerAuthentication); it is logged and its
 * status says why. AuthorizationPolicies that use HTTP-only fields are kept
 * (enforced fail-closed at L4) and their status says a waypoint is needed;
 * those attaching by targetRef(s) are a waypoint's: the agent leaves them
 * out and leaves their status to the waypoint; dry-run ones are evaluated, not enforced.
 * Both also get a Warning Event (`kubectl describe` and `kubectl get events`
 * show it), once per generation. `onChange` runs after each rebuild (live
 * connections are re-checked).
 */
export function startPolicyState(api: KubeApi, watch: Watcher, log: Log, onChange: () => void, node: string): PolicyState {
  const reported = new Map<string, string>();
  const evented = new Set<string>();

  const emitEvent = (kind: string, obj: KubernetesObject, condition: Condition | undefined): void => {
    const reason = condition === undefined ? undefined : EVENT_REASON[condition.reason];
    const key = `${obj.metadata?.uid}|${obj.metadata?.generation}|${reason}`;
    if (reason === undefined || evented.has(key)) return;
    evented.add(key);
    const body = warningEvent({ apiVersion: `${GROUP.group}/${GROUP.version}`, kind, object: obj }, reason, condition!.message, { component: 'warren-node', reportingComponent: 'warren.io/node', instance: node }, new Date());
    const policy = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
    void api.create(`/api/v1/namespaces/${encodeURIComponent(body.metadata.namespace!)}/events`, body).then(
      () => log('policy event recorded', { policy, reason, event: body.metadata.name }),
      (err: unknown) => {
        // Another node's agent reported it first: said once per node, as the outcome of this attempt.
        if (err instanceof KubeApiError && err.status === 409) return log('policy event already recorded', { policy, reason, event: body.metadata.name });
        evented.delete(key);
        log('policy event not recorded', { policy, reason, err: (err as Error).message });
      },
    );
  };

  const report = (plural: string, kind: string, obj: KubernetesObject, condition: Condition | undefined): void => {
    emitEvent(kind, obj, condition);
    const id = `${plural}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
    const key = `${obj.metadata?.uid}|${condition?.reason ?? 'Accepted'}|${condition?.message ?? ''}`;
    if (reported.get(id) === key) return;
    reported.set(id, key);
    const current = (obj as { status?: { conditions?: Condition[] } }).status?.conditions?.find((c) => c.type === 'Accepted');
    const wanted: Condition = condition ?? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'enforced by warren node agents' };
    if (condition?.status === 'False') log(`${kind} ${condition.reason === 'Invalid' ? 'invalid: enforced fail-closed' : 'needs a waypoint'}`, { policy: `${obj.metadata?.namespace}/${obj.metadata?.name}`, reason: condition.message });
    if (current?.reason === wanted.reason && current.message === wanted.message) return;
    void api
      .mergePatch(`/apis/${GROUP.group}/${GROUP.version}/namespaces/${encodeURIComponent(obj.metadata!.namespace!)}/${plural}/${encodeURIComponent(obj.metadata!.name!)}/status`, {
        status: { conditions: [{ ...wanted, lastTransitionTime: new Date().toISOString() }] },
      })
      .catch((err: Error) => log('policy status update failed', { policy: id, err: err.message }));
  };

  let peerAuthentications: PeerAuthentication[] = [];
  let authorizationPolicies: AuthorizationPolicy[] = [];
  const rebuild = coalesced(20, () => {
    peerAuthentications = validated(pa, 'peerauthentications', 'PeerAuthentication', parsePeerAuthentication, failClosedPeerAuthentication, 'it counts as STRICT until fixed', () => undefined);
    authorizationPolicies = validated(ap, 'authorizationpolicies', 'AuthorizationPolicy', parseAuthorizationPolicy, failClosedPolicy, 'it denies every connection to the workloads it selects until fixed', (p) =>
      // targetRef(s): the waypoint enforces it and writes its status (src/waypoint/waypoint-state.ts)
      p.targeted
        ? null
        : p.httpFields.length > 0
          ? {
              type: 'Accepted',
              status: 'False',
              reason: 'WaypointRequired',
              message: `HTTP fields need a waypoint (${p.httpFields.join(', ')}); at L4 ${p.action === 'ALLOW' ? 'those ALLOW rules match nothing' : 'those DENY rules deny every connection their L4 part matches'}`,
            }
          : p.dryRun
            ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'dry run (istio.io/dry-run): evaluated, logged and counted by warren node agents, not enforced' }
            : undefined,
    );
    onChange();
  });
  const validated = <T>(
    informer: ResilientInformer<KubernetesObject>,
    plural: string,
    kind: string,
    parse: (o: unknown) => T,
    failClosed: (o: unknown, message: string) => T | undefined,
    meaning: string,
    /** the condition to report; null: not the node agents' object, leave its status alone */
    warn: (t: T) => Condition | undefined | null,
  ): T[] =>
    informer.list().flatMap((obj) => {
      try {
        const t = parse(obj);
        const condition = warn(t);
        if (condition !== null) report(plural, kind, obj, condition);
        return [t];
      } catch (err) {
        const message = (err as Error).message;
        const stand = failClosed(obj, message);
        if (!(stand as { targeted?: boolean } | undefined)?.targeted) report(plural, kind, obj, { type: 'Accepted', status: 'False', reason: 'Invalid', message: `${message}; ${meaning}` });
        return stand === undefined ? [] : [stand];
      }
    });
  const watchPlural = (plural: string): ResilientInformer<KubernetesObject> =>
    watch<KubernetesObject>({ path: `/apis/${GROUP.group}/${GROUP.version}/${plural}`, onChange: rebuild });
  const pa = watchPlural('peerauthentications');
  const ap = watchPlural('authorizationpolicies');
  return {
    peerAuthentications: () => peerAuthentications,
    authorizationPolicies: () => authorizationPolicies,
    synced: Promise.all([pa.synced, ap.synced]).then(() => undefined),
    async stop() {
      rebuild.cancel();
      await Promise.all([pa.stop(), ap.stop()]);
    },
  };
}
