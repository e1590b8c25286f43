import type { SpiffeId } from '../identity/spiffe.js';
import type { RedirectBackend } from '../redirect/backend.js';
import { podRulesId } from '../redirect/pod-rules-id.js';
import type { DataPlane } from '../tunnel/dataplane.js';
import type { NativePodProxy } from '../tunnel/native-pod-proxy.js';
import type { PodProxy, PodProxyOptions } from '../tunnel/pod-proxy.js';
import type { ConnectionObserver } from '../telemetry/connection-observer.js';
import type { ConnectionRegistry, PodConnections } from '../tunnel/connection-registry.js';
import { sameLabels, type PodView } from './enrollment-plan.js';
import { availableParallelism } from 'node:os';
import { concurrencyLimit } from './concurrency-limit.js';

export type RedirectionState = 'enabled' | 'disabled' | 'failed';
/** the rule writes the manager makes: a pod's whole set, its capture alone taken out (drain), the rest of it, the node's probe SNAT */
export type RuleOperation = 'pod-apply' | 'pod-remove-capture' | 'pod-remove' | 'node';

export interface EnrolledPod {
  uid: string;
  pod: string;
  netns: string;
  ips: string[];
  identity: SpiffeId;
  /** the pod's labels as policies select them: this entry is their one owner, the proxy reads them from here */
  labels: Record<string, string>;
  /** its live connections, in the agent's registry */
  connections: PodConnections;
  proxy: PodProxy | NativePodProxy;
  /** what was written in its netns (src/redirect/pod-rules-id.ts): a successor agent that would write the same leaves it */
  rulesId: string;
}

export interface EnrollmentDeps {
  backend: RedirectBackend;
  /** the pod's netns file, for pods that already run (no CNI call to tell us) */
  findNetns(pod: { uid: string; ips: string[] }): Promise<string>;
  annotate(pod: { namespace: string; name: string }, state: RedirectionState, reason?: string): Promise<void>;
  /** the pod's identity with a valid certificate in hand (fetched if need be); rejects when none can be had */
  acquireIdentity(pod: PodView): Promise<SpiffeId>;
  releaseIdentity(uid: string): void;
  /** the agent's listeners in the pod (PodProxy.start, or NativePodProxy.start with `--dataplane native`) */
  startProxy(options: PodProxyOptions, uid: string): Promise<PodProxy | NativePodProxy>;
  dataplane: DataPlane;
  telemetry: ConnectionObserver;
  /** the agent's live connections (re-authorization and drain) */
  connections: ConnectionRegistry;
  /** a netfilter/routing change failed (counted in warren_rule_apply_errors_total) */
  ruleError(operation: RuleOperation): void;
  /** a netfilter/routing change was written (counted in warren_rule_applies_total) */
  ruleApplied(operation: RuleOperation): void;
  /**
   * The agent this one took over from wrote exactly these rules (`rulesId`) in this netns
   * for this pod and still has them (an upgrade's listener hand-off): they are left as they are.
   */
  rulesInPlace?(uid: string, netns: string, rulesId: string): boolean;
  log(msg: string, fields: Record<string, unknown>): void;
  drainMs: number;
}

/**
 * Performs enrollment: the pod identity's certificate first (no rules for a
 * pod that could not speak mTLS), rules in the pod's netns, then the agent's
 * listeners there (the node's probe SNAT written alongside), then the pod's annotation;
 * unenrollment in reverse. Work for one pod is serialized (a CNI ADD and an informer
 * event can race), different pods proceed in parallel.
 */
export class EnrollmentManager {
  private readonly pods = new Map<string, EnrolledPod>();
  /** IPs of pods being enrolled: the node's probe SNAT is written alongside their own rules, not after */
  private readonly enrolling = new Map<string, string[]>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * Rules and listeners for a burst of pods: two per core, so each core has
   * work while another pod waits for its nft/ip child processes.
   */
  private readonly programming = concurrencyLimit(2 * availableParallelism());
  /** the last node-rules write, and the one queued behind it (which reads the pod set only when it starts) */
  private nodeRules: Promise<void> = Promise.resolve();
  private nodeRulesQueued: Promise<void> | undefined;

  constructor(private readonly deps: EnrollmentDeps) {}

  enrolledUids(): Set<string> {
    return new Set(this.pods.keys());
  }

  enrolled(): EnrolledPod[] {
    return [...this.pods.values()];
  }

  private serialize<T>(uid: string, task: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(uid) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(task);
    this.queues.set(uid, next);
    void next.finally(() => {
      if (this.queues.get(uid) === next) this.queues.delete(uid);
    }).catch(() => undefined);
    return next;
  }

  /**
   * Enrolls a pod; `netns` is known when the CNI plugin asks, found by scanning otherwise. Idempotent.
   * Resolves once the redirection and the listeners are in place: a CNI ADD answers then. The
   * `enabled` annotation (an API write) follows in the pod's queue, before any later work for it.
   */
  enroll(pod: PodView, netns?: string): Promise<void> {
    const enrolled = this.serialize(pod.uid, () => this.enrollNow(pod, netns));
    void this.serialize(pod.uid, async () => {
      if (!(await enrolled.catch(() => false))) return;
      await this.deps.annotate(pod, 'enabled').catch((err: Error) => this.deps.log('annotation failed', { pod: `${pod.namespace}/${pod.name}`, err: err.message }));
    });
    return enrolled.then(() => undefined);
  }

  /** true: enrolled now; false: it already was. */
  private async enrollNow(pod: PodView, netns: string | undefined): Promise<boolean> {
    if (this.pods.has(pod.uid)) return false;
    const name = `${pod.namespace}/${pod.name}`;
    let path = netns;
    let identity: SpiffeId;
    let rulesId = '';
    let rulesKept = false;
    // Where an enrollment's time went (logged with "pod enrolled"): what to look at when a node is slow.
    const ms: Record<'identity' | 'netns' | 'queued' | 'rules' | 'listeners' | 'nodeRules', number> = { identity: 0, netns: 0, queued: 0, rules: 0, listeners: 0, nodeRules: 0 };
    let mark = performance.now();
    const lap = (phase: keyof typeof ms): void => {
      const now = performance.now();
      ms[phase] = Math.round(now - mark);
      mark = now;
    };
    try {
      identity = await this.deps.acquireIdentity(pod);
      lap('identity');
      const netnsPath = (path ??= await this.deps.findNetns({ uid: pod.uid, ips: pod.ips }));
      lap('netns');
      // SNAT of probes to a pod not captured yet changes nothing for it (the app answers the
      // probe source as any other), so the node's write need not wait for the pod's.
      this.enrolling.set(pod.uid, pod.ips);
      const nodeRules = this.syncNodeRules();
      // Until the entry exists (listeners up) the labels are the ones enrolled with.
      let entry: EnrolledPod | undefined;
      const { proxy, connections } = await this.programming(async () => {
        lap('queued');
        rulesId = podRulesId(this.deps.backend.name, { podIPs: pod.ips });
        rulesKept = this.deps.rulesInPlace?.(pod.uid, netnsPath, rulesId) === true;
        // An upgrade: the old agent's rules are what this one would write; writing them again is churn (README "Reliability", scenario 1).
        if (!rulesKept) {
          await this.deps.backend.applyPod(netnsPath, { podIPs: pod.ips }).then(
            () => this.deps.ruleApplied('pod-apply'),
            (err: unknown) => {
              this.deps.ruleError('pod-apply');
              throw err;
            },
          );
        }
        lap('rules');
        const connections = this.deps.connections.forPod();
        const proxy = await this.deps.startProxy({
          pod: name,
          namespace: pod.namespace,
          labels: () => entry?.labels ?? pod.labels,
          connections,
          netns: netnsPath,
          ips: pod.ips,
          identity,
          dataplane: this.deps.dataplane,
          telemetry: this.deps.telemetry,
        }, pod.uid).catch(async (err: unknown) => {
          // Rules without listeners would black-hole the pod: take them back. Not the old
          // agent's, kept: its listeners still serve the pod until it stops (then it fails closed).
          connections.close('enrollment failed');
          if (!rulesKept) await this.deps.backend.removePod(netnsPath).catch(() => undefined);
          throw err;
        });
        return { proxy, connections };
      });
      lap('listeners');
      entry = { uid: pod.uid, pod: name, netns: netnsPath, ips: pod.ips, identity, labels: pod.labels, connections, proxy, rulesId };
      this.pods.set(pod.uid, entry);
      this.enrolling.delete(pod.uid);
      await nodeRules;
      lap('nodeRules');
    } catch (err) {
      if (this.enrolling.delete(pod.uid)) void this.syncNodeRules();
      this.deps.releaseIdentity(pod.uid);
      this.deps.log('enrollment failed', { pod: name, err: (err as Error).message });
      await this.deps.annotate(pod, 'failed', (err as Error).message).catch(() => undefined);
      throw err;
    }
    this.deps.log('pod enrolled', { pod: name, netns: path, ips: pod.ips, ms, ...(rulesKept ? { rulesKept } : {}) });
    return true;
  }

  /** An enrolled pod's labels changed: its policies are selected with the new ones, its live connections re-checked. Returns connections closed. */
  relabel(uid: string, labels: Record<string, string>): number {
    const entry = this.pods.get(uid);
    if (entry === undefined || sameLabels(entry.labels, labels)) return 0;
    entry.labels = labels;
    return entry.connections.reauthorize();
  }

  /**
   * Removes the capture rules first (new connections go direct at once),
   * closes the listeners and lets proxied connections drain, then removes
   * the rest (reply routing that drained connections still needed).
   * `podGone`: the netns is going away with the pod, so there are no rules
   * to remove and no pod to annotate.
   */
  unenroll(uid: string, options: { podGone: boolean; podRef?: { namespace: string; name: string } }): Promise<void> {
    return this.serialize(uid, async () => {
      const entry = this.pods.get(uid);
      if (entry === undefined) return;
      this.pods.delete(uid);
      const ruleFailure = (operation: RuleOperation) => (err: Error): void => {
        this.deps.ruleError(operation);
        this.deps.log('rule removal failed', { pod: entry.pod, err: err.message });
      };
      if (!options.podGone) await this.deps.backend.removePodCapture(entry.netns).then(() => this.deps.ruleApplied('pod-remove-capture'), ruleFailure('pod-remove-capture'));
      await this.syncNodeRules();
      if (!options.podGone && options.podRef) {
        await this.deps.annotate(options.podRef, 'disabled').catch((err: Error) => this.deps.log('annotation failed', { pod: entry.pod, err: err.message }));
      }
      this.deps.log('pod unenrolled', { pod: entry.pod, podGone: options.podGone });
      await entry.proxy.close(options.podGone ? 0 : this.deps.drainMs);
      if (!options.podGone) await this.deps.backend.removePod(entry.netns).then(() => this.deps.ruleApplied('pod-remove'), ruleFailure('pod-remove'));
      this.deps.releaseIdentity(uid);
    });
  }

  /**
   * The node's probe SNAT follows the set of enrolled pod IPs. Writes are
   * serialized and coalesce: a change joins the write queued behind the
   * running one, which reads the pod set when it starts, so a burst of 110
   * enrollments costs two writes, not 110.
   */
  private syncNodeRules(): Promise<void> {
    this.nodeRulesQueued ??= this.nodeRules = this.nodeRules.then(async () => {
      this.nodeRulesQueued = undefined;
      const podIPs = [...[...this.pods.values()].map((p) => p.ips), ...this.enrolling.values()].flat();
      try {
        await (podIPs.length === 0 ? this.deps.backend.removeNode(undefined) : this.deps.backend.applyNode(undefined, { podIPs }));
        this.deps.ruleApplied('node');
      } catch (err) {
        this.deps.ruleError('node');
        this.deps.log('node rules failed', { err: (err as Error).message });
      }
    });
    return this.nodeRulesQueued;
  }

  /**
   * Agent shutdown: listeners go at once (a successor bound with SO_REUSEPORT takes new
   * connections; without one they fail closed, rules stay), open connections and tunnel
   * streams may finish for `drainMs`, then are reset.
   */
  async shutdown(drainMs: number): Promise<void> {
    await Promise.all([...this.pods.values()].map((p) => p.proxy.close(drainMs)));
    this.pods.clear();
  }
}
