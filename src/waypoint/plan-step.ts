import { applyResilience } from '../resilience/request-hooks.js';
import { planRequest, type ConnectionFacts, type Plan, type PlanRequest, type Snapshot } from './request-plan.js';

/**
 * A request's plan (docs/architecture.md §14, §15): routing and L7 policy, then the
 * resilience step, for every request the HTTP/1.1, HTTP/2 and upgrade handlers see. A
 * failure in either is answered 500 by the waypoint, never forwarded.
 */
export async function planStep(snap: Snapshot, conn: ConnectionFacts, input: PlanRequest): Promise<Plan> {
  try {
    const plan = await planRequest(snap, conn, input);
    return snap.resilience !== undefined ? applyResilience(snap.resilience, snap, conn, input, plan) : plan;
  } catch (err) {
    return { kind: 'respond', status: 500, body: 'waypoint error\n', headers: {}, flags: '-', decision: { allow: false, policy: '-', reason: (err as Error).message } };
  }
}
