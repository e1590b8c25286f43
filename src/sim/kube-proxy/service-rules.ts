import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { WarrenError } from '../../errors/warren-error.js';

/** The one table this kube-proxy owns in a node netns (kube-proxy's nftables mode uses `ip kube-proxy`). */
export const KUBE_PROXY_TABLE = 'wrn-kube-proxy';

export type ServiceProtocol = 'TCP' | 'UDP';

export interface KubeProxyServicePort {
  name?: string;
  port: number;
  protocol: ServiceProtocol;
  targetPort: number;
}

export interface KubeProxyService {
  namespace: string;
  name: string;
  clusterIP: string;
  ports: KubeProxyServicePort[];
}

/** One EndpointSlice port with the slice's ready addresses. */
export interface KubeProxyEndpoints {
  namespace: string;
  service: string;
  portName?: string;
  port: number;
  addresses: string[];
}

export interface KubeProxyInput {
  services: KubeProxyService[];
  endpoints: KubeProxyEndpoints[];
  /** The node's pod CIDR: DNATed traffic from it back into it is masqueraded (hairpin on the bridge). */
  podCidr: string;
}

const TABLE = `ip ${KUBE_PROXY_TABLE}`;
const MAP_KEY = 'ip daddr . meta l4proto . th dport';
const MAP_TYPE = 'ipv4_addr . inet_proto . inet_service';
const REJECT_CHAIN = 'reject-chain';

// Plain code-point order: localeCompare would make the output depend on the machine's locale.
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const ipKey = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const validPort = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;

/**
 * A valid, stable nft identifier: a readable part (letters, digits, dashes)
 * that may be truncated or collide after sanitizing, so a hash of the exact
 * key keeps it unique.
 */
export function kubeProxyChainName(kind: 'svc' | 'ep', parts: Array<string | number>): string {
  const key = parts.join('/');
  const readable = key
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return `${kind}-${readable === '' ? '' : `${readable}-`}${hash}`;
}

function checkPodCidr(cidr: string): void {
  const [addr, len, ...rest] = cidr.split('/');
  const bits = Number(len);
  if (rest.length > 0 || addr === undefined || !isIPv4(addr) || !/^\d+$/.test(len ?? '') || bits > 32) {
    throw new WarrenError('ERR_SIM_CONFIG', `kube-proxy needs the node's IPv4 pod CIDR such as 10.244.1.0/24, got ${JSON.stringify(cidr)}`);
  }
}

interface Backend {
  address: string;
  port: number;
}

/**
 * The endpoints of one service port. A named slice port matches the service
 * port of that name; an unnamed one matches by target port. Non-IPv4 or
 * repeated addresses are dropped.
 */
function backendsFor(svc: KubeProxyService, port: KubeProxyServicePort, all: KubeProxyEndpoints[]): Backend[] {
  const seen = new Map<string, Backend>();
  for (const e of all) {
    if (e.namespace !== svc.namespace || e.service !== svc.name || !validPort(e.port)) continue;
    const matches = e.portName !== undefined && e.portName !== '' ? e.portName === port.name : e.port === port.targetPort;
    if (!matches) continue;
    for (const address of e.addresses) {
      if (isIPv4(address)) seen.set(`${address}:${e.port}`, { address, port: e.port });
    }
  }
  return [...seen.values()].sort((a, b) => ipKey(a.address) - ipKey(b.address) || a.port - b.port);
}

function baseChain(name: string, type: string, hook: string, priority: string, rules: string[]): string[] {
  return [`\tchain ${name} {`, `\t\ttype ${type} hook ${hook} priority ${priority}; policy accept;`, ...rules.map((r) => `\t\t${r}`), '\t}'];
}

function regularChain(name: string, rules: string[]): string[] {
  return [`\tchain ${name} {`, ...rules.map((r) => `\t\t${r}`), '\t}'];
}

function verdictMap(name: string, elements: string[]): string[] {
  return [
    `\tmap ${name} {`,
    `\t\ttype ${MAP_TYPE} : verdict`,
    ...(elements.length === 0 ? [] : ['\t\telements = {', ...elements.map((e, i) => `\t\t\t${e}${i < elements.length - 1 ? ',' : ''}`), '\t\t}']),
    '\t}',
  ];
}

/**
 * kube-proxy's nftables mode reduced to ClusterIPs, as one `nft -f -`
 * script that replaces table `ip wrn-kube-proxy` atomically (applying it
 * again yields the same table):
 * - nat prerouting (pods route through their node) and nat output (the
 *   node's own processes) look up (ClusterIP, protocol, port) in the verdict
 *   map `service-ips`; each service port's chain picks an endpoint uniformly
 *   at random per new connection (conntrack keeps the choice), and each
 *   endpoint chain DNATs to it;
 * - a service port without endpoints is rejected (TCP reset, ICMP port
 *   unreachable for UDP) from filter forward/output instead of timing out;
 * - postrouting masquerades DNATed pod→pod traffic within the pod CIDR: the
 *   backend would otherwise answer its bridge neighbour directly, bypassing
 *   the node's conntrack, and the client would drop a reply from an address
 *   it never connected to.
 * Invalid entries (non-IPv4 ClusterIP or address, bad port, a repeated
 * ClusterIP/protocol/port) are skipped: one bad object must not take down
 * every service. The output depends only on the input's content, not order.
 */
export function buildKubeProxyScript(input: KubeProxyInput): string {
  checkPodCidr(input.podCidr);
  const services = input.services
    .filter((s) => isIPv4(s.clusterIP))
    .sort((a, b) => byText(a.namespace, b.namespace) || byText(a.name, b.name) || ipKey(a.clusterIP) - ipKey(b.clusterIP));
  const serviceIps: string[] = [];
  const noEndpoints: string[] = [];
  const chains: string[] = [];
  const used = new Set<string>();
  for (const svc of services) {
    const ports = svc.ports
      .filter((p) => validPort(p.port) && validPort(p.targetPort) && (p.protocol === 'TCP' || p.protocol === 'UDP'))
      .sort((a, b) => a.port - b.port || byText(a.protocol, b.protocol) || byText(a.name ?? '', b.name ?? '') || a.targetPort - b.targetPort);
    for (const port of ports) {
      const proto = port.protocol === 'TCP' ? 'tcp' : 'udp';
      const key = `${svc.clusterIP} . ${proto} . ${port.port}`;
      if (used.has(key)) continue;
      used.add(key);
      const backends = backendsFor(svc, port, input.endpoints);
      if (backends.length === 0) {
        noEndpoints.push(`${key} : goto ${REJECT_CHAIN}`);
        continue;
      }
      const svcChain = kubeProxyChainName('svc', [svc.namespace, svc.name, proto, port.port]);
      serviceIps.push(`${key} : jump ${svcChain}`);
      const epChains = backends.map((b) => ({
        name: kubeProxyChainName('ep', [svc.namespace, svc.name, proto, port.port, `${b.address}:${b.port}`]),
        backend: b,
      }));
      const pick = epChains.map((ep, i) => `${i} : jump ${ep.name}`).join(', ');
      chains.push('', ...regularChain(svcChain, [`numgen random mod ${epChains.length} vmap { ${pick} }`]));
      for (const ep of epChains) {
        chains.push('', ...regularChain(ep.name, [`meta l4proto ${proto} dnat to ${ep.backend.address}:${ep.backend.port}`]));
      }
    }
  }
  const lookup = `${MAP_KEY} vmap @service-ips`;
  const rejectCheck = `ct state new ${MAP_KEY} vmap @no-endpoint-services`;
  return [
    `add table ${TABLE}`,
    `delete table ${TABLE}`,
    `table ${TABLE} {`,
    ...verdictMap('service-ips', serviceIps),
    '',
    ...verdictMap('no-endpoint-services', noEndpoints),
    '',
    ...baseChain('prerouting', 'nat', 'prerouting', 'dstnat', [lookup]),
    '',
    // `dstnat` is not accepted as a priority name for the output hook by nft 1.0.
    ...baseChain('output', 'nat', 'output', '-100', [lookup]),
    '',
    ...baseChain('postrouting', 'nat', 'postrouting', 'srcnat', [
      `ct status dnat ip saddr ${input.podCidr} ip daddr ${input.podCidr} masquerade`,
    ]),
    '',
    // Before nat output (-100), so the node's own connections still carry the ClusterIP.
    ...baseChain('filter-forward', 'filter', 'forward', '-110', [rejectCheck]),
    '',
    ...baseChain('filter-output', 'filter', 'output', '-110', [rejectCheck]),
    '',
    ...regularChain(REJECT_CHAIN, ['meta l4proto tcp reject with tcp reset', 'reject']),
    ...chains,
    '}',
    '',
  ].join('\n');
}

/** Removes the table if present; a no-op otherwise (the `add` makes the `delete` idempotent). */
export function removeKubeProxyScript(): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n`;
}
