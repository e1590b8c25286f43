import { CONNMARK, POLICY_ROUTE, hex } from './constants.js';
import type { Families } from './spec.js';

export type RoutingFamily = 4 | 6;

const fwmark = `${hex(CONNMARK.value)}/${hex(CONNMARK.mask)}`;
const defaultDst = (family: RoutingFamily): string => (family === 4 ? '0.0.0.0/0' : '::/0');
const rule = (verb: 'add' | 'del'): string => `rule ${verb} fwmark ${fwmark} pref ${POLICY_ROUTE.pref} lookup ${POLICY_ROUTE.table}`;
const route = (verb: 'replace' | 'del', family: RoutingFamily): string => `route ${verb} local ${defaultDst(family)} dev lo table ${POLICY_ROUTE.table}`;

export const familyList = (f: Families): RoutingFamily[] => [...(f.ipv4 ? [4 as const] : []), ...(f.ipv6 ? [6 as const] : [])];

/**
 * The policy routing of one family as one `ip -<family> -force -batch -` input:
 * one process per family instead of a read and a write per entry. Applying
 * re-adds the rule (the kernel refuses an identical one with "File exists",
 * which is then the answer "already there") and replaces the route; removing
 * deletes exactly that rule and route ("No such file or directory", "No such
 * process", "FIB table does not exist": already gone), so other rules and
 * routes in table 100 stay.
 * Removal runs for both families: the pod's addresses may be unknown by then.
 */
export function policyRoutingBatch(op: 'apply' | 'remove', family: RoutingFamily): string {
  const lines = op === 'apply' ? [rule('add'), route('replace', family)] : [rule('del'), route('del', family)];
  return `${lines.join('\n')}\n`;
}

/**
 * The failures in `ip -force -batch` stderr that are not the idempotent
 * answers above, as `line N: message`. `ip` prints each failure as its
 * message followed by `Command failed -:N`.
 */
export function unexpectedBatchErrors(op: 'apply' | 'remove', stderr: string): string[] {
  const lines = stderr.split('\n').map((l) => l.trim());
  const out: string[] = [];
  let message: string[] = [];
  for (const line of lines) {
    const failed = /^Command failed -:(\d+)$/.exec(line);
    if (failed === null) {
      if (line !== '') message.push(line);
      continue;
    }
    const text = message.join(' ');
    message = [];
    const n = Number(failed[1]);
    // Removing from a table that was never created, or a family the netns does not have
    // (IPv6 disabled), has nothing to remove either.
    const idempotent =
      op === 'apply' ? n === 1 && /File exists/.test(text) : /No such file or directory|No such process|FIB table does not exist|Address family not supported/.test(text);
    if (!idempotent) out.push(`line ${n}: ${text}`);
  }
  // Output after the last "Command failed" (or with none at all) is a failure we cannot place.
  if (message.length > 0) out.push(message.join(' '));
  return out;
}
