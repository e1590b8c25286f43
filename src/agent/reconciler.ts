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
  /** a failed enrollment is tried again after this long */
  retryMs?: number;
}

/**
 * Drives enrollment towards the plan (docs/architecture.md §4): nothing
 * before the initial sync (pods enrolled before their policies and
 * PeerAuthentications are known would run unprotected), then one pass per
 * burst of informer events. A failed enrollment (netns not found yet, rules
 * refused, no certificate) is retried later, not forgotten.
 */
export class Reconciler {
  private isSynced = false;
  /** call on every informer event */
  readonly soon: (() => void) & { cancel(): void };
  private readonly later: (() => void) & { cancel(): void };

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
    this.soon.cancel();
    this.later.cancel();
  }

  pass(): void {
    if (!this.isSynced) return;
    const d = this.deps;
    const plan = planReconcile(d.pods(), d.namespaceLabels(), d.enrolled(), d.policy);
    for (const pod of plan.enroll) void d.enroll(pod).catch(() => this.later());
    let closed = 0;
    for (const r of plan.relabel) closed += d.relabel(r.uid, r.labels);
    if (closed > 0) d.log('connections closed: pods were relabeled and a policy now denies them', { closed });
    for (const u of plan.unenroll) void d.unenroll(u);
  }
}
