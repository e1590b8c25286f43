import { createHash } from 'node:crypto';
import type { ProxyEndpoints, ProxyService } from './proxy-input.js';

export const KUBE_PROXY_TABLE = 'wrn-kube-proxy';

export interface KubeProxyInput {
  services: ProxyService[];
  endpoints: ProxyEndpoints[];
  /** the node's pod CIDR: DNATed traffic from it back into it is masqueraded (hairpin on the bridge) */
  podCidr: string;
}

/** nft chain names: readable prefix, a hash for uniqueness, within nft's identifier rules. */
function chainName(kind: 'svc' | 'ep', ...parts: Array<string | number>): string {
  const key = parts.join('/');
  const readable = key.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40);
  return `${kind}-${readable}-${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}

/** The endpoints of one service port: slice ports match by name, or by target port when unnamed. */
function endpointsFor(svc: ProxyService, port: ProxyService['ports'][number], all: ProxyEndpoints[]): string[] {
  const addresses = all
    .filter((e) => e.namespace === svc.namespace && e.service === svc.name && (port.name !== undefined ? e.portName === port.name : e.port === port.targetPort))
    .flatMap((e) => e.addresses.map((a) => `${a}:${e.port}`));
  return [...new Set(addresses)].sort();
}

/**
 * kube-proxy's nftables mode, reduced to what a ClusterIP needs: a verdict
 * map from (ClusterIP, protocol, port) to a per-service chain that picks an
 * endpoint uniformly at random for each new connection (conntrack keeps the
 * choice for the rest of it). A service port without endpoints is rejected
 * at once (TCP reset), as kube-proxy does, instead of timing out. The
 * script replaces the whole table in one transaction.
 */
export function buildKubeProxyScript(input: KubeProxyInput): string {
  const services = [...input.services].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  const mapElements: string[] = [];
  const rejectElements: string[] = [];
  const chains: string[] = [];
  for (const svc of services) {
    for (const port of [...svc.ports].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol))) {
      const proto = port.protocol.toLowerCase();
      const key = `${svc.clusterIP} . ${proto} . ${port.port}`;
      const backends = endpointsFor(svc, port, input.endpoints);
      if (backends.length === 0) {
        rejectElements.push(key);
        continue;
      }
      const svcChain = chainName('svc', svc.namespace, svc.name, proto, port.port);
      mapElements.push(`${key} : goto ${svcChain}`);
      const epChains = backends.map((b, i) => {
        const name = chainName('ep', svc.namespace, svc.name, proto, port.port, b);
        chains.push(`\tchain ${name} {\n\t\tmeta l4proto ${proto} dnat to ${b}\n\t}`);
        return `${i} : goto ${name}`;
      });
      chains.push(
        backends.length === 1
          ? `\tchain ${svcChain} {\n\t\t${epChains[0]!.replace(/^0 : /, '')}\n\t}`
          : `\tchain ${svcChain} {\n\t\tnumgen random mod ${backends.length} vmap { ${epChains.join(', ')} }\n\t}`,
      );
    }
  }
  const elements = (list: string[]): string => (list.length === 0 ? '' : `\n\t\telements = { ${list.join(', ')} }`);
  return [
    `table ip ${KUBE_PROXY_TABLE}`,
    `delete table ip ${KUBE_PROXY_TABLE}`,
    `table ip ${KUBE_PROXY_TABLE} {`,
    `\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict${elements(mapElements)}\n\t}`,
    `\tset no-endpoints {\n\t\ttype ipv4_addr . inet_proto . inet_service${elements(rejectElements)}\n\t}`,
    `\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}`,
    `\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}`,
    `\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tct status dnat ip saddr ${input.podCidr} ip daddr ${input.podCidr} masquerade\n\t}`,
    `\tchain filter-forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tip daddr . meta l4proto . th dport @no-endpoints reject with tcp reset\n\t}`,
    `\tchain filter-output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr . meta l4proto . th dport @no-endpoints reject with tcp reset\n\t}`,
    ...chains,
    '}',
    '',
  ].join('\n');
}

export function removeKubeProxyScript(): string {
  return `table ip ${KUBE_PROXY_TABLE}\ndelete table ip ${KUBE_PROXY_TABLE}\n`;
}
