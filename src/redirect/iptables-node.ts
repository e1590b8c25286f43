import { isIPv4 } from 'node:net';
import { IPTABLES_CHAINS, PROBE_SOURCE } from './constants.js';
import type { IptablesRules } from './iptables-pod.js';
import type { NodeRedirectSpec } from './spec.js';

/**
 * Node rules for the iptables backend (see buildNodeNftScript): as Istio does,
 * `--socket-exists` in POSTROUTING selects connections this host originated.
 * Both families are always programmed so a pod gaining an IPv6 address later
 * only changes rule lines, never the chain layout.
 */
export function buildNodeIptables(spec: NodeRedirectSpec): IptablesRules[] {
  const chain = IPTABLES_CHAINS.postrouting;
  const build = (family: 4 | 6): IptablesRules => {
    const ips = spec.podIPs.filter((ip) => isIPv4(ip) === (family === 4));
    const source = family === 4 ? PROBE_SOURCE.ipv4 : PROBE_SOURCE.ipv6;
    const prefix = family === 4 ? 32 : 128;
    return {
      family,
      tables: [
        {
          table: 'nat',
          chains: [
            {
              name: chain,
              rules: ips.map((ip) => `-A ${chain} -d ${ip}/${prefix} -p tcp -m owner --socket-exists -j SNAT --to-source ${source}`),
            },
          ],
          jumps: [{ from: 'POSTROUTING', to: chain }],
        },
      ],
    };
  };
  return [build(4), build(6)];
}

export function nodeIptablesNames(): Array<{ table: string; chains: string[]; jumps: Array<{ from: string; to: string }> }> {
  return buildNodeIptables({ podIPs: [] })[0]!.tables.map((t) => ({ table: t.table, chains: t.chains.map((c) => c.name), jumps: t.jumps }));
}
