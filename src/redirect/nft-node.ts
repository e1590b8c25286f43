import { NFT_TABLES, PROBE_SOURCE } from './constants.js';
import { chain, resetTable } from './nft-pod.js';
import type { NodeRedirectSpec } from './spec.js';
import { isIPv4 } from 'node:net';

/**
 * Node (host netns) rules: connections the node itself opens to an enrolled
 * pod (kubelet probes) leave with the probe source, which the pod rules
 * accept without redirection. `fib saddr type local` is how nft says
 * "originated on this host" in postrouting (iptables: --socket-exists).
 */
export function buildNodeNftScript(spec: NodeRedirectSpec): string {
  const v4 = spec.podIPs.filter((ip) => isIPv4(ip));
  const v6 = spec.podIPs.filter((ip) => !isIPv4(ip));
  const set = (name: string, type: string, ips: string[]): string[] => [
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    ...(ips.length > 0 ? [`\t\telements = { ${ips.join(', ')} }`] : []),
    '\t}',
    '',
  ];
  return [
    ...resetTable(NFT_TABLES.node),
    `table inet ${NFT_TABLES.node} {`,
    ...set('pod-ips-v4', 'ipv4_addr', v4),
    ...set('pod-ips-v6', 'ipv6_addr', v6),
    chain('postrouting', 'nat', 'postrouting', 'srcnat', [
      `ip daddr @pod-ips-v4 fib saddr type local meta l4proto tcp snat ip to ${PROBE_SOURCE.ipv4}`,
      `ip6 daddr @pod-ips-v6 fib saddr type local meta l4proto tcp snat ip6 to ${PROBE_SOURCE.ipv6}`,
    ]),
    '}',
    '',
  ].join('\n');
}

export function buildNodeNftRemoveScript(): string {
  return [...resetTable(NFT_TABLES.node), ''].join('\n');
}
