import { CONNMARK, POLICY_ROUTE, hex } from './constants.js';
import type { Families } from './spec.js';

/** One `ip` invocation, as an argument array. */
export type IpCommand = string[];

/** Entries of `ip -j rule show` / `ip -j route show table N` (fields used here). */
export interface IpRuleEntry {
  priority?: number | undefined;
  fwmark?: string | undefined;
  fwmask?: string | undefined;
  table?: string | undefined;
}
export interface IpRouteEntry {
  type?: string | undefined;
  dst?: string | undefined;
  dev?: string | undefined;
}

export interface PolicyRoutingState {
  rules: Record<4 | 6, IpRuleEntry[]>;
  /** routes in table POLICY_ROUTE.table */
  routes: Record<4 | 6, IpRouteEntry[]>;
}

const fwmark = `${hex(CONNMARK.value)}/${hex(CONNMARK.mask)}`;
const familyFlag = (family: 4 | 6): string => (family === 4 ? '-4' : '-6');
const familyList = (f: Families): Array<4 | 6> => [...(f.ipv4 ? [4 as const] : []), ...(f.ipv6 ? [6 as const] : [])];

function hasWarrenRule(rules: readonly IpRuleEntry[]): boolean {
  return rules.some(
    (r) =>
      r.priority === POLICY_ROUTE.pref &&
      r.fwmark === hex(CONNMARK.value) &&
      r.fwmask === hex(CONNMARK.mask) &&
      r.table === String(POLICY_ROUTE.table),
  );
}

const hasWarrenRoute = (routes: readonly IpRouteEntry[]): boolean =>
  routes.some((r) => r.type === 'local' && r.dst === 'default' && r.dev === 'lo');

const defaultDst = (family: 4 | 6): string => (family === 4 ? '0.0.0.0/0' : '::/0');

/**
 * Commands that install the policy routing for `families`, given the rules
 * already present per family (`ip -j rule show`): `ip rule add` would add a
 * duplicate, so it is emitted only when missing; `route replace` is idempotent.
 */
export function policyRoutingApply(families: Families, state: PolicyRoutingState): IpCommand[] {
  return familyList(families).flatMap((family) => [
    ...(hasWarrenRule(state.rules[family])
      ? []
      : [[familyFlag(family), 'rule', 'add', 'fwmark', fwmark, 'pref', String(POLICY_ROUTE.pref), 'lookup', String(POLICY_ROUTE.table)]]),
    [familyFlag(family), 'route', 'replace', 'local', defaultDst(family), 'dev', 'lo', 'table', String(POLICY_ROUTE.table)],
  ]);
}

/** Commands that remove exactly what policyRoutingApply installs, when present (others' routes in the table stay). */
export function policyRoutingRemove(state: PolicyRoutingState): IpCommand[] {
  return ([4, 6] as const).flatMap((family) => [
    ...(hasWarrenRule(state.rules[family])
      ? [[familyFlag(family), 'rule', 'del', 'fwmark', fwmark, 'pref', String(POLICY_ROUTE.pref), 'lookup', String(POLICY_ROUTE.table)]]
      : []),
    ...(hasWarrenRoute(state.routes[family])
      ? [[familyFlag(family), 'route', 'del', 'local', defaultDst(family), 'dev', 'lo', 'table', String(POLICY_ROUTE.table)]]
      : []),
  ]);
}
