import { WarrenError } from '../errors/warren-error.js';
import { netnsPolicyRouting } from '../native/netns-route.js';
import { familyList, policyRoutingRequest, unexpectedRoutingAnswers, type RoutingFamily } from './policy-routing.js';
import type { Families } from './spec.js';

function write(netns: string, op: 'apply' | 'remove', family: RoutingFamily): void {
  const failures = unexpectedRoutingAnswers(op, netnsPolicyRouting(netns, policyRoutingRequest(op, family)));
  if (failures.length > 0) {
    throw new WarrenError('ERR_COMMAND_FAILED', `policy routing ${op} (IPv${family}) in ${netns} failed: ${failures.join(', ')}`);
  }
}

/** A pod's reply routing, per family it has an address of (rtnetlink from the addon: no process). */
export async function applyPolicyRouting(netns: string, families: Families): Promise<void> {
  for (const family of familyList(families)) write(netns, 'apply', family);
}

/** Both families: the pod's addresses may be unknown by then. */
export async function removePolicyRouting(netns: string): Promise<void> {
  for (const family of [4, 6] as const) write(netns, 'remove', family);
}
