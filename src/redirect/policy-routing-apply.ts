import type { CommandRunner } from './runner.js';
import { familyList, policyRoutingBatch, unexpectedBatchErrors, type RoutingFamily } from './policy-routing.js';
import type { Families } from './spec.js';

async function runBatch(runner: CommandRunner, netns: string, op: 'apply' | 'remove', family: RoutingFamily): Promise<void> {
  const accept = (stderr: string): boolean => unexpectedBatchErrors(op, stderr).length === 0;
  await runner.run('ip', [`-${family}`, '-force', '-batch', '-'], { netns, input: policyRoutingBatch(op, family), accept });
}

export async function applyPolicyRouting(runner: CommandRunner, netns: string, families: Families): Promise<void> {
  for (const family of familyList(families)) await runBatch(runner, netns, 'apply', family);
}

export async function removePolicyRouting(runner: CommandRunner, netns: string): Promise<void> {
  for (const family of [4, 6] as const) await runBatch(runner, netns, 'remove', family);
}
