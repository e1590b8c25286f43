import { CONNMARK, POLICY_ROUTE } from './constants.js';
import type { Families } from './spec.js';

export type RoutingFamily = 4 | 6;

/**
 * One family's policy routing, as the addon writes it over rtnetlink inside
 * the pod's netns (src/native/netns_route.cc): the rule
 * `fwmark CONNMARK pref POLICY_ROUTE.pref lookup POLICY_ROUTE.table` and the
 * route `local 0.0.0.0/0 (::/0) dev lo table POLICY_ROUTE.table`.
 */
export interface PolicyRoutingRequest {
  apply: boolean;
  family: RoutingFamily;
  mark: number;
  mask: number;
  pref: number;
  table: number;
}

/** The kernel's answer to each of the two requests: an errno name, '' for success. */
export interface PolicyRoutingAnswer {
  rule: string;
  route: string;
}

export const familyList = (f: Families): RoutingFamily[] => [...(f.ipv4 ? [4 as const] : []), ...(f.ipv6 ? [6 as const] : [])];

export const policyRoutingRequest = (op: 'apply' | 'remove', family: RoutingFamily): PolicyRoutingRequest => ({
  apply: op === 'apply',
  family,
  mark: CONNMARK.value,
  mask: CONNMARK.mask,
  pref: POLICY_ROUTE.pref,
  table: POLICY_ROUTE.table,
});

/**
 * The answers that are failures, as `rule: ERRNO` / `route: ERRNO`. Applying
 * adds the rule exclusively (EEXIST is then the answer "already there") and
 * replaces the route; removing deletes exactly that rule and route, and
 * "not there" (ENOENT, ESRCH: also a table never created) or a family the
 * netns does not have (EAFNOSUPPORT: IPv6 disabled) has nothing to remove,
 * so other rules and routes in the table stay and removal is idempotent.
 */
export function unexpectedRoutingAnswers(op: 'apply' | 'remove', answer: PolicyRoutingAnswer): string[] {
  const idempotent = (step: 'rule' | 'route', errno: string): boolean =>
    errno === '' || (op === 'apply' ? step === 'rule' && errno === 'EEXIST' : ['ENOENT', 'ESRCH', 'EAFNOSUPPORT'].includes(errno));
  return (['rule', 'route'] as const).filter((step) => !idempotent(step, answer[step])).map((step) => `${step}: ${answer[step]}`);
}
