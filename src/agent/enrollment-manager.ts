import type { SpiffeId } from '../identity/spiffe.js';
import type { RedirectBackend } from '../redirect/backend.js';
import type { DataPlane } from '../tunnel/dataplane.js';
import type { NativeHub } from '../tunnel/native-hub.js';
import { NativePodProxy } from '../tunnel/native-pod-proxy.js';
import { PodProxy, type PodProxyOptions } from '../tunnel/pod-proxy.js';
import type { ConnectionObserver } from '../telemetry/connection-observer.js';
import type { PodView } from './enrollment-plan.js';

export type RedirectionState = 'enabled' | 'disabled' | 'failed';

export interface EnrolledPod {
  uid: string;
  pod: string;
  netns: string;
  ips: string[];
  identity: SpiffeId;
  labels: Record<string, string>;
  proxy: PodProxy | NativePodProxy;
}

export interface EnrollmentDeps {
  backend: RedirectBackend;
  /** the pod's netns file, for pods that already run (no CNI call to tell us) */
  findNetns(pod: { uid: string; ips: string[] }): Promise<string>;
  annotate(pod: { namespace: string; name: string }, state: RedirectionState, reason?: string): Promise<void>;
  /** the pod's identity with a valid certificate in hand (fetched if need be); rejects when none can be had */
  acquireIdentity(pod: PodView): Promise<SpiffeId>;
  releaseIdentity(uid: string): void;
  dataplane: DataPlane;
  /** set: pods' bytes move on the native data path (`--dataplane native`) */
  native?: NativeHub;
  telemetry: ConnectionObserver;
  /** a netfilter/routing change failed (counted in warren_rule_apply_errors_total) */
  ruleError(operation: 'pod-apply' | 'pod-remove' | 'node'): void;
  log(msg: string, fields: Record<string, unknown>): void;
  drainMs: number;
}

/**
 * Performs enrollment: the pod identity's certificate first (no rules for a
 * pod that could not speak mTLS), rules in the pod's netns, then the agent's
 * listeners there, then the node's probe SNAT and the pod's annotation;
 * unenrollment in reverse. Work for one pod is serialized (a CNI ADD and an informer
 * event can race), different pods proceed in parallel.
 */
export class EnrollmentManager {
  private readonly pods = new Map<string, EnrolledPod>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private nodeRules: Promise<void> = Promise.resolve();

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

  /** Enrolls a pod; `netns` is known when the CNI plugin asks, found by scanning otherwise. Idempotent. */
  enroll(pod: PodView, netns?: string): Promise<void> {
    return this.serialize(pod.uid, async () => {
      if (this.pods.has(pod.uid)) return;
      const name = `${pod.namespace}/${pod.name}`;
      let path = netns;
      let identity: SpiffeId;
      try {
        identity = await this.deps.acquireIdentity(pod);
        path ??= await this.deps.findNetns({ uid: pod.uid, ips: pod.ips });
        await this.deps.backend.applyPod(path, { podIPs: pod.ips }).catch((err: unknown) => {
          this.deps.ruleError('pod-apply');
          throw err;
        });
        const native = this.deps.native;
        const start = (o: PodProxyOptions): Promise<PodProxy | NativePodProxy> => (native === undefined ? PodProxy.start(o) : NativePodProxy.start(o, native));
        const proxy = await start({
          pod: name,
          namespace: pod.namespace,
          labels: pod.labels,
          netns: path,
          ips: pod.ips,
          identity,
          dataplane: this.deps.dataplane,
          telemetry: this.deps.telemetry,
        }).catch(async (err: unknown) => {
          // Rules without listeners would black-hole the pod: take them back.
          await this.deps.backend.removePod(path!).catch(() => undefined);
          throw err;
        });
        this.pods.set(pod.uid, { uid: pod.uid, pod: name, netns: path, ips: pod.ips, identity, labels: pod.labels, proxy });
      } catch (err) {
        this.deps.releaseIdentity(pod.uid);
        this.deps.log('enrollment failed', { pod: name, err: (err as Error).message });
        await this.deps.annotate(pod, 'failed', (err as Error).message).catch(() => undefined);
        throw err;
      }
      this.deps.log('pod enrolled', { pod: name, netns: path, ips: pod.ips });
      await this.syncNodeRules();
      await this.deps.annotate(pod, 'enabled').catch((err: Error) => this.deps.log('annotation failed', { pod: name, err: err.message }));
    });
  }

  /** An enrolled pod's labels changed: its policies are selected with the new ones. Returns connections closed. */
  relabel(uid: string, labels: Record<string, string>): number {
    const entry = this.pods.get(uid);
    if (entry === undefined || sameLabels(entry.labels, labels)) return 0;
    entry.labels = labels;
    return entry.proxy.relabel(labels);
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
      const ruleFailure = (err: Error): void => {
        this.deps.ruleError('pod-remove');
        this.deps.log('rule removal failed', { pod: entry.pod, err: err.message });
      };
      if (!options.podGone) await this.deps.backend.removePodCapture(entry.netns).catch(ruleFailure);
      await this.syncNodeRules();
      if (!options.podGone && options.podRef) {
        await this.deps.annotate(options.podRef, 'disabled').catch((err: Error) => this.deps.log('annotation failed', { pod: entry.pod, err: err.message }));
      }
      this.deps.log('pod unenrolled', { pod: entry.pod, podGone: options.podGone });
      await entry.proxy.close(options.podGone ? 0 : this.deps.drainMs);
      if (!options.podGone) await this.deps.backend.removePod(entry.netns).catch(ruleFailure);
      this.deps.releaseIdentity(uid);
    });
  }

  /** The node's probe SNAT follows the set of enrolled pod IPs; writes are serialized and coalesce. */
  private syncNodeRules(): Promise<void> {
    this.nodeRules = this.nodeRules
      .catch(() => undefined)
      .then(() => {
        const podIPs = [...this.pods.values()].flatMap((p) => p.ips);
        return podIPs.length === 0 ? this.deps.backend.removeNode(undefined) : this.deps.backend.applyNode(undefined, { podIPs });
      });
    return this.nodeRules.catch((err: Error) => {
      this.deps.ruleError('node');
      this.deps.log('node rules failed', { err: err.message });
    });
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

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
