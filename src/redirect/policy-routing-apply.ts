import { z } from 'zod';
import { POLICY_ROUTE } from './constants.js';
import type { CommandRunner } from './runner.js';
import { policyRoutingApply, policyRoutingRemove, type PolicyRoutingState } from './policy-routing.js';
import type { Families } from './spec.js';
import { WarrenError } from '../errors/warren-error.js';

const ruleList = z.array(
  z.looseObject({ priority: z.number().optional(), fwmark: z.string().optional(), fwmask: z.string().optional(), table: z.string().optional() }),
);
const routeList = z.array(z.looseObject({ type: z.string().optional(), dst: z.string().optional(), dev: z.string().optional() }));

function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  const res = schema.safeParse(text.trim() === '' ? [] : JSON.parse(text));
  if (!res.success) throw new WarrenError('ERR_UNEXPECTED_OUTPUT', `unexpected output of ${what}: ${res.error.message}`);
  return res.data;
}

/** Reads only the families asked for: each read is a process spawned in the pod's netns. */
async function readState(runner: CommandRunner, netns: string, families: Families = { ipv4: true, ipv6: true }): Promise<PolicyRoutingState> {
  const state: PolicyRoutingState = { rules: { 4: [], 6: [] }, routes: { 4: [], 6: [] } };
  for (const family of [4, 6] as const) {
    if (!(family === 4 ? families.ipv4 : families.ipv6)) continue;
    const flag = `-${family}`;
    state.rules[family] = parseJson(ruleList, await runner.run('ip', [flag, '-j', 'rule', 'show'], { netns }), 'ip rule show');
    // A table that never had a route does not exist yet: that is "no routes".
    const routes = await runner
      .run('ip', [flag, '-j', 'route', 'show', 'table', String(POLICY_ROUTE.table)], { netns })
      .catch((err: unknown) => {
        if (err instanceof WarrenError && /does not exist/.test(err.message)) return '[]';
        throw err;
      });
    state.routes[family] = parseJson(routeList, routes, 'ip route show');
  }
  return state;
}

export async function applyPolicyRouting(runner: CommandRunner, netns: string, families: Families): Promise<void> {
  for (const cmd of policyRoutingApply(families, await readState(runner, netns, families))) await runner.run('ip', cmd, { netns });
}

export async function removePolicyRouting(runner: CommandRunner, netns: string): Promise<void> {
  for (const cmd of policyRoutingRemove(await readState(runner, netns))) await runner.run('ip', cmd, { netns });
}
