import { existsSync } from 'node:fs';
import type { RedirectBackend } from './backend.js';
import type { CommandRunner } from './runner.js';
import { buildPodIptables, podIptablesNames, renderIptablesApply, renderIptablesRemove, type IptablesRules } from './iptables-pod.js';
import { buildNodeIptables, nodeIptablesNames } from './iptables-node.js';
import { isEmptyTable, parseIptablesSave, type SavedRuleset } from './iptables-save.js';
import { applyPolicyRouting, removePolicyRouting } from './policy-routing-apply.js';
import { familiesOf, parseNodeRedirectSpec, parsePodRedirectSpec } from './spec.js';
import { WarrenError } from '../errors/warren-error.js';

type Names = ReturnType<typeof podIptablesNames>;
const netnsOpt = (netns: string | undefined): { netns?: string } => (netns === undefined ? {} : { netns });
const tool = (family: 4 | 6, verb: 'save' | 'restore'): string => `${family === 4 ? 'iptables' : 'ip6tables'}-${verb}`;

const kernelHasIpv6 = (): boolean => existsSync('/proc/sys/net/ipv6');

export function iptablesBackend(runner: CommandRunner): RedirectBackend {
  const save = async (netns: string | undefined, family: 4 | 6): Promise<SavedRuleset> =>
    parseIptablesSave(await runner.run(tool(family, 'save'), [], netnsOpt(netns)));
  // -w: the xtables lock is host-wide, shared by every netns; wait instead of failing.
  const restore = (netns: string | undefined, family: 4 | 6, text: string): Promise<string> =>
    runner.run(tool(family, 'restore'), ['-w', '10', '--noflush'], { input: text, ...netnsOpt(netns) });

  const apply = async (netns: string | undefined, ruleSets: IptablesRules[]): Promise<void> => {
    for (const rules of ruleSets) await restore(netns, rules.family, renderIptablesApply(rules, await save(netns, rules.family)));
  };

  const remove = async (netns: string | undefined, names: Names, deleteEmptyTables = true): Promise<void> => {
    for (const family of [4, 6] as const) {
      const text = renderIptablesRemove(names, await save(netns, family));
      if (text === undefined) continue;
      await restore(netns, family, text);
      // iptables-nft leaves the tables it created behind, empty. An empty
      // table (no rules, built-in chains accepting) means exactly what no
      // table means, so deleting it restores the netns's ruleset as it was
      // before enrollment. Decided from emptiness, not from memory of what
      // existed at apply time, so it also holds across agent restarts.
      if (!deleteEmptyTables) continue;
      const after = await save(netns, family);
      if (after.variant !== 'nf_tables') continue;
      for (const { table } of names) {
        const saved = after.tables.get(table);
        if (saved === undefined || !isEmptyTable(saved)) continue;
        await runner
          .run('nft', ['delete', 'table', family === 4 ? 'ip' : 'ip6', table], netnsOpt(netns))
          .catch((err: unknown) => {
            if (!(err instanceof WarrenError && err.code === 'ERR_COMMAND_MISSING')) throw err;
          });
      }
    }
  };

  return {
    name: 'iptables',
    async applyPod(netns, input) {
      const spec = parsePodRedirectSpec(input);
      try {
        // A kernel booted without IPv6 has no ip6tables tables, and no IPv6 traffic to capture.
        await apply(netns, buildPodIptables(spec).filter((r) => r.family === 4 || kernelHasIpv6()));
        await applyPolicyRouting(netns, familiesOf(spec.podIPs));
      } catch (err) {
        // Two families and routing are separate steps: never leave half of them.
        await this.removePod(netns).catch(() => undefined);
        throw err;
      }
    },
    async removePodCapture(netns) {
      // The (then empty) nat table stays until removePod: its hooks keep translating drained connections.
      await remove(netns, podIptablesNames().filter((t) => t.table === 'nat'), false);
    },
    async removePod(netns) {
      await remove(netns, podIptablesNames());
      await removePolicyRouting(netns);
    },
    async applyNode(netns, input) {
      await apply(netns, buildNodeIptables(parseNodeRedirectSpec(input)));
    },
    async removeNode(netns) {
      await remove(netns, nodeIptablesNames());
    },
  };
}
