import type { Fault, StringMatch, VirtualServiceHttp } from './virtual-service.js';

/**
 * Which VirtualService http rule a request takes, and whether its fault hits
 * this request (docs/architecture.md §15): a delay and an abort each roll
 * their own percentage, as Envoy's fault filter does.
 */
export type FaultAction = { delayMs?: number; abort?: { httpStatus: number } | { grpcStatus: string } };

function matches(m: StringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (m.kind === 'regex') return m.re.test(value);
  return m.kind === 'exact' ? value === m.value : value.startsWith(m.value);
}

export function selectHttpRule(rules: readonly VirtualServiceHttp[], header: (name: string) => string | undefined): VirtualServiceHttp | undefined {
  return rules.find((r) => r.match.length === 0 || r.match.some((all) => all.every((h) => matches(h.match, header(h.name)))));
}

export function faultAction(fault: Fault | undefined, random: () => number): FaultAction {
  if (fault === undefined) return {};
  const hit = (percent: number): boolean => percent >= 100 || random() * 100 < percent;
  return {
    ...(fault.delay && hit(fault.delay.percent) ? { delayMs: fault.delay.ms } : {}),
    ...(fault.abort && hit(fault.abort.percent) ? { abort: 'httpStatus' in fault.abort ? { httpStatus: fault.abort.httpStatus } : { grpcStatus: fault.abort.grpcStatus } } : {}),
  };
}
