import assert from 'node:assert/strict';
import { execa } from 'execa';
import type { BackendName } from '../../src/redirect/backend.js';
import { createBackend } from '../../src/redirect/detect.js';
import { systemRunner } from '../../src/redirect/runner.js';
import type { TestPod } from './netns.js';

export const BACKENDS: readonly BackendName[] = ['nft', 'iptables'];

export async function applyPodRules(backend: BackendName, pod: TestPod): Promise<void> {
  await createBackend(backend, systemRunner).applyPod(pod.path, { podIPs: [pod.ipv4, pod.ipv6] });
}

export async function removePodRules(backend: BackendName, pod: TestPod): Promise<void> {
  await createBackend(backend, systemRunner).removePod(pod.path);
}

/**
 * Everything the pod rule set can touch in a netns, as text: nft ruleset,
 * iptables-save for both families (timestamps dropped), policy rules and
 * table 100 routes. Timestamps and packet counters are dropped.
 */
export interface RulesSnapshot {
  nft: string;
  iptables: string;
  ip6tables: string;
  rules4: string;
  rules6: string;
  routes4: string;
  routes6: string;
}

/**
 * A command that fails throws, naming the command and its stderr: a
 * snapshot that silently lost a part would make "no warren rule left" pass when nft,
 * iptables-save or the netns itself is broken.
 */
export async function snapshotRules(netns: string): Promise<RulesSnapshot> {
  const run = async (file: string, args: string[]): Promise<string> => {
    const res = await execa('ip', ['netns', 'exec', netns, file, ...args], { reject: false });
    // `ip route show table 100` of a table never created: the empty table, the one allowed failure.
    const emptyTable = file === 'ip' && res.exitCode === 2 && /FIB table does not exist/.test(res.stderr);
    if (res.exitCode !== 0 && !emptyTable) throw new Error(`${res.command} failed (${res.exitCode}): ${res.stderr}`);
    return res.stdout
      .split('\n')
      .filter((l) => !/^# (Generated|Completed)/.test(l))
      .join('\n')
      // Counters are traffic, not configuration (a stray router solicitation bumps them).
      .replace(/counter packets \d+ bytes \d+/g, 'counter');
  };
  return {
    nft: await run('nft', ['list', 'ruleset']),
    iptables: await run('iptables-save', []),
    ip6tables: await run('ip6tables-save', []),
    rules4: await run('ip', ['-4', 'rule']),
    rules6: await run('ip', ['-6', 'rule']),
    routes4: await run('ip', ['-4', 'route', 'show', 'table', '100']),
    routes6: await run('ip', ['-6', 'route', 'show', 'table', '100']),
  };
}

/** No table, chain or policy route of warren in a snapshot (either backend, both families). */
export function assertNoWarrenRules(rules: RulesSnapshot, where: string): void {
  assert.doesNotMatch(rules.nft, /warren/i, `${where}: nft ruleset`);
  assert.doesNotMatch(rules.iptables + rules.ip6tables, /WARREN/i, `${where}: iptables-save`);
  assert.doesNotMatch(rules.rules4 + rules.rules6, /fwmark 0x111/, `${where}: policy rules`);
  assert.equal((rules.routes4 + rules.routes6).trim(), '', `${where}: table 100 routes`);
}
