import { CONNMARK, IPTABLES_CHAINS, PORTS, PROBE_SOURCE, PROXY_MARK, hex } from './constants.js';
import { familiesOf, type PodRedirectSpec } from './spec.js';
import type { SavedRuleset } from './iptables-save.js';

/** One table's worth of warren chains and the jumps into them from built-in chains. */
export interface IptablesTableRules {
  table: 'nat' | 'mangle';
  chains: Array<{ name: string; rules: string[] }>;
  jumps: Array<{ from: string; to: string }>;
}

export interface IptablesRules {
  family: 4 | 6;
  tables: IptablesTableRules[];
}

const mark = (m: { value: number; mask: number }): string => `${hex(m.value)}/${hex(m.mask)}`;

/**
 * The pod rule set for both IP families, same semantics as the nft
 * builder's `inet` tables: a family the pod has no address in still gets
 * the capture rules, so its TCP (IPv6 to an IPv4-only pod's link-local
 * address, say) is redirected to a port with no listener of that family
 * and refused instead of passing uncaptured. Only the kubelet probe
 * exception is per family present, as in nft. Only a connection's first
 * packet (SYN) is redirected, for the reason given at nft-pod.ts SYN.
 */
export function buildPodIptables(spec: PodRedirectSpec): IptablesRules[] {
  const f = familiesOf(spec.podIPs);
  const build = (family: 4 | 6): IptablesRules => {
    const { prerouting: PRERT, output: OUTPUT } = IPTABLES_CHAINS;
    const present = family === 4 ? f.ipv4 : f.ipv6;
    const probe = family === 4 ? `${PROBE_SOURCE.ipv4}/32` : `${PROBE_SOURCE.ipv6}/128`;
    const loopback = family === 4 ? '127.0.0.1/32' : '::1/128';
    return {
      family,
      tables: [
        {
          table: 'nat',
          chains: [
            {
              name: PRERT,
              rules: [
                ...(present ? [`-A ${PRERT} -s ${probe} -p tcp -j ACCEPT`] : []),
                `-A ${PRERT} -p tcp -m tcp --dport ${PORTS.hbone} -j ACCEPT`,
                `-A ${PRERT} -m mark --mark ${mark(PROXY_MARK)} -j ACCEPT`,
                `-A ${PRERT} -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j REDIRECT --to-ports ${PORTS.inbound}`,
              ],
            },
            {
              name: OUTPUT,
              rules: [
                `-A ${OUTPUT} -m mark --mark ${mark(PROXY_MARK)} -j ACCEPT`,
                `-A ${OUTPUT} -d ${loopback} -j ACCEPT`,
                `-A ${OUTPUT} -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j REDIRECT --to-ports ${PORTS.outbound}`,
              ],
            },
          ],
          jumps: [
            { from: 'PREROUTING', to: PRERT },
            { from: 'OUTPUT', to: OUTPUT },
          ],
        },
        {
          // mangle OUTPUT re-routes when the mark changes (ip_route_me_harder):
          // the app's replies to a spoofed client go back to the agent.
          table: 'mangle',
          chains: [
            {
              name: OUTPUT,
              rules: [
                `-A ${OUTPUT} -m mark --mark ${mark(PROXY_MARK)} -j CONNMARK --set-xmark ${mark(CONNMARK)}`,
                `-A ${OUTPUT} -m mark --mark ${mark(PROXY_MARK)} -j RETURN`,
                `-A ${OUTPUT} -m connmark --mark ${mark(CONNMARK)} -j MARK --set-xmark ${mark(CONNMARK)}`,
              ],
            },
          ],
          jumps: [{ from: 'OUTPUT', to: OUTPUT }],
        },
      ],
    };
  };
  return [build(4), build(6)];
}

const jumpLine = (j: { from: string; to: string }): string => `-A ${j.from} -j ${j.to}`;

/**
 * `iptables-restore --noflush` input that installs `rules` given the current
 * ruleset. Declaring a user chain flushes it, so re-applying replaces its
 * rules; jumps are added only when missing so they never duplicate.
 */
export function renderIptablesApply(rules: IptablesRules, current: SavedRuleset): string {
  const out: string[] = [];
  for (const t of rules.tables) {
    const existing = current.tables.get(t.table)?.rules ?? [];
    out.push(`*${t.table}`);
    for (const c of t.chains) out.push(`:${c.name} - [0:0]`);
    for (const c of t.chains) out.push(...c.rules);
    // Insert first so warren sees traffic before rules other tools append.
    for (const j of t.jumps) if (!existing.includes(jumpLine(j))) out.push(`-I ${j.from} 1 -j ${j.to}`);
    out.push('COMMIT');
  }
  return out.join('\n') + '\n';
}

/**
 * `iptables-restore --noflush` input that removes warren's jumps and chains
 * from `current`, or undefined when nothing of warren's is there.
 */
export function renderIptablesRemove(tables: ReadonlyArray<{ table: string; chains: string[]; jumps: Array<{ from: string; to: string }> }>, current: SavedRuleset): string | undefined {
  const out: string[] = [];
  for (const t of tables) {
    const saved = current.tables.get(t.table);
    if (saved === undefined) continue;
    const jumps = t.jumps.filter((j) => saved.rules.includes(jumpLine(j)));
    const chains = t.chains.filter((c) => saved.chains.has(c));
    if (jumps.length === 0 && chains.length === 0) continue;
    out.push(`*${t.table}`);
    for (const j of jumps) out.push(`-D ${j.from} -j ${j.to}`);
    for (const c of chains) out.push(`:${c} - [0:0]`);
    for (const c of chains) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  return out.length > 0 ? out.join('\n') + '\n' : undefined;
}

/** The names of everything the pod rule set creates, for removal. */
export function podIptablesNames(): Array<{ table: string; chains: string[]; jumps: Array<{ from: string; to: string }> }> {
  const any = buildPodIptables({ podIPs: ['0.0.0.0'] })[0]!;
  return any.tables.map((t) => ({ table: t.table, chains: t.chains.map((c) => c.name), jumps: t.jumps }));
}
