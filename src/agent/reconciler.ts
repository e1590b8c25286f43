import { WarrenError } from '../errors/warren-error.js';
import type { EnrollmentPolicy } from '../k8s/enrollment.js';
import { coalesced } from './coalesced.js';
import { planReconcile, type PodView, type Unenrollment } from './enrollment-plan.js';

export interface ReconcilerDeps {
  /** the pods of this node as the informer has them */
  pods(): PodView[];
  namespaceLabels(): ReadonlyMap<string, Record<string, string>>;
  policy: EnrollmentPolicy;
  /** enrolled pods: UID → labels as the manager has them */
  enrolled(): ReadonlyMap<string, Record<string, string>>;
  enroll(pod: PodView): Promise<void>;
  /** returns the connections a policy now denies and that were closed */
  relabel(uid: string, labels: Record<string, string>): number;
  unenroll(u: Unenrollment): Promise<void>;
  log(msg: string, fields: Record<string, unknown>): void;
  /** a burst of informer events waits this long and becomes one pass */
  coalesceMs?: number;
  /** an enrollment that failed with a retryable error (or one of unknown kind) is tried again after this long */
  retryMs?: number;
  /**
   * one that failed with an error that says trying again cannot help (`retryable: false`:
   * a rule the kernel refuses, a CA that forbids the identity) waits this long instead
   */
  holdMs?: number;
}

/**
 * Drives enrollment towards the plan (docs/architecture.md §4): nothing
 * before the initial sync (pods enrolled before their policies and
 * PeerAuthentications are known would run unprotected), then one pass per
 * burst of informer events. A failed enrollment is retried, not forgotten;
 * the error's `retryable` decides when: soon (netns not found yet, the CA
 * unreachable, a port still in use), or only after `holdMs` (an error that
 * would recur at once), so a pod that cannot be enrolled is not retried in a
 * tight loop on every informer event.
 */
export class Reconciler {
  private isSynced = false;
  /** call on every informer event */
  readonly soon: (() => void) & { cancel(): void };
  private readonly later: (() => void) & { cancel(): void };
  /** pods whose last enrollment failed with a non-retryable error: UID → when they may be tried again */
  private readonly held = new Map<string, number>();
  private holdTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: ReconcilerDeps) {
    this.soon = coalesced(deps.coalesceMs ?? 20, () => this.pass());
    this.later = coalesced(deps.retryMs ?? 2000, () => this.pass());
  }

  synced(): boolean {
    return this.isSynced;
  }

  /** Every informer has synced: the first pass runs now. */
  markSynced(): void {
    this.isSynced = true;
    this.pass();
  }

  stop(): void {
    this.stopped = true;
    this.soon.cancel();
    this.later.cancel();
    clearTimeout(this.holdTimer);
  }

  pass(): void {
    if (!this.isSynced) return;
    const d = this.deps;
    const plan = planReconcile(d.pods(), d.namespaceLabels(), d.enrolled(), d.policy);
    const now = Date.now();
    for (const [uid, until] of this.held) if (until <= now || !plan.enroll.some((p) => p.uid === uid)) this.held.delete(uid);
    this.wakeForHeld();
    for (const pod of plan.enroll) {
      if (this.held.has(pod.uid)) continue;
      void d.enroll(pod).catch((err: unknown) => this.failed(pod, err));
    }
    let closed = 0;
    for (const r of plan.relabel) closed += d.relabel(r.uid, r.labels);
    if (closed > 0) d.log('connections closed: pods were relabeled and a policy now denies them', { closed });
    for (const u of plan.unenroll) void d.unenroll(u);
  }

  private failed(pod: PodView, err: unknown): void {
    if (this.stopped) return;
    // An error of unknown kind is retried as a retryable one: holding back is only for what says it would recur.
    if (!(err instanceof WarrenError) || err.retryable) return this.later();
    const holdMs = this.deps.holdMs ?? 30_000;
    this.held.set(pod.uid, Date.now() + holdMs);
    this.deps.log('enrollment not retried for a while: the error says trying again cannot help', { pod: `${pod.namespace}/${pod.name}`, code: err.code, holdMs });
    this.wakeForHeld();
  }

  /** One timer, for the pod held the shortest: a pass then retries it. */
  private wakeForHeld(): void {
    clearTimeout(this.holdTimer);
    if (this.held.size === 0) return;
    this.holdTimer = setTimeout(() => this.pass(), Math.max(0, Math.min(...this.held.values()) - Date.now()));
  }
}
