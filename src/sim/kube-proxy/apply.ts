import type { CommandRunner } from '../../redirect/runner.js';
import { KUBE_PROXY_TABLE, buildKubeProxyScript, removeKubeProxyScript, type KubeProxyInput } from './service-rules.js';

/**
 * Replaces the node's service table in one nft transaction: a script nft
 * refuses leaves the previous table in place, never half of the new one.
 * `netns` is a netns file (/var/run/netns/<name>). Returns the script applied,
 * so a sync loop can skip the next write when nothing changed.
 */
export async function applyKubeProxyRules(runner: CommandRunner, netns: string, input: KubeProxyInput): Promise<string> {
  const script = buildKubeProxyScript(input);
  await runner.run('nft', ['-f', '-'], { netns, input: script });
  return script;
}

/** Deletes the service table; removing it when it is absent is not an error. */
export async function removeKubeProxyRules(runner: CommandRunner, netns: string): Promise<void> {
  await runner.run('nft', ['-f', '-'], { netns, input: removeKubeProxyScript() });
}

/**
 * The table as nft lists it, or undefined when it does not exist (decided
 * from `nft list tables`, not from an error message).
 */
export async function listKubeProxyTable(runner: CommandRunner, netns: string): Promise<string | undefined> {
  const tables = await runner.run('nft', ['list', 'tables', 'ip'], { netns });
  if (!tables.split('\n').some((l) => l.trim() === `table ip ${KUBE_PROXY_TABLE}`)) return undefined;
  return runner.run('nft', ['list', 'table', 'ip', KUBE_PROXY_TABLE], { netns });
}
