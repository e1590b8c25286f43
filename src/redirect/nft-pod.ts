import { CONNMARK, NFT_TABLES, PORTS, PROBE_SOURCE, PROXY_MARK, hex } from './constants.js';
import { familiesOf, type PodRedirectSpec } from './spec.js';

/**
 * Only a connection's first packet is redirected: a pod netns has no conntrack until its
 * rules need it, so a connection open before enrollment is first seen mid-stream and picked up
 * as new; matching it would send it to the agent's listener, which resets it. Matching SYN
 * leaves such connections flowing outside the capture (docs/architecture.md §3).
 */
export const SYN = 'tcp flags & (fin|syn|rst|ack) == syn';

const markIs = (what: 'meta mark' | 'ct mark', m: { value: number; mask: number }): string =>
  `${what} & ${hex(m.mask)} == ${hex(m.value)}`;
/** Sets the masked bits to the value and keeps the others (other CNIs use marks too). */
const markSet = (what: 'meta mark' | 'ct mark', m: { value: number; mask: number }): string =>
  `${what} set ${what} & ${hex(~m.mask >>> 0)} | ${hex(m.value)}`;

/** `add` then `delete` makes the delete idempotent; in one nft transaction nothing is ever half-applied. */
export function resetTable(name: string): string[] {
  return [`add table inet ${name}`, `delete table inet ${name}`];
}

/**
 * The pod netns rule set as one `nft -f -` script: atomic, and applying it
 * again replaces the tables with identical ones. The `inet` tables see both
 * families, so TCP of a family the pod has no address in (IPv6 to an
 * IPv4-only pod, e.g. to its link-local address) is redirected to a port
 * with no listener of that family and refused, never passed uncaptured.
 */
export function buildPodNftScript(spec: PodRedirectSpec): string {
  const f = familiesOf(spec.podIPs);
  const prerouting = [
    ...(f.ipv4 ? [`ip saddr ${PROBE_SOURCE.ipv4} meta l4proto tcp accept`] : []),
    ...(f.ipv6 ? [`ip6 saddr ${PROBE_SOURCE.ipv6} meta l4proto tcp accept`] : []),
    `tcp dport ${PORTS.hbone} accept`,
    `${markIs('meta mark', PROXY_MARK)} accept`,
    `${SYN} redirect to :${PORTS.inbound}`,
  ];
  const output = [
    `${markIs('meta mark', PROXY_MARK)} accept`,
    // Loopback stays inside the pod in both families, whichever the pod has addresses in.
    'ip daddr 127.0.0.1 accept',
    'ip6 daddr ::1 accept',
    `${SYN} redirect to :${PORTS.outbound}`,
  ];
  // Route-type chain: changing the mark here re-runs routing, which sends the
  // app's replies to a spoofed client IP back to the agent (table 100).
  const mangle = [
    `${markIs('meta mark', PROXY_MARK)} ${markSet('ct mark', CONNMARK)} accept`,
    `${markIs('ct mark', CONNMARK)} ${markSet('meta mark', CONNMARK)}`,
  ];
  return [
    ...resetTable(NFT_TABLES.nat),
    ...resetTable(NFT_TABLES.mangle),
    `table inet ${NFT_TABLES.nat} {`,
    chain('prerouting', 'nat', 'prerouting', 'dstnat', prerouting),
    '',
    chain('output', 'nat', 'output', '-100', output),
    '}',
    `table inet ${NFT_TABLES.mangle} {`,
    chain('output', 'route', 'output', 'mangle', mangle),
    '}',
    '',
  ].join('\n');
}

/**
 * Empties the capture chains but keeps them (see RedirectBackend.removePodCapture):
 * the kernel translates packets of already-NATed connections only while some
 * nat chain is registered at the hook, so deleting the table would break the
 * connections that are meant to drain.
 */
export function buildPodNftCaptureRemoveScript(): string {
  return [`add table inet ${NFT_TABLES.nat}`, `flush table inet ${NFT_TABLES.nat}`, ''].join('\n');
}

export function buildPodNftRemoveScript(): string {
  return [...resetTable(NFT_TABLES.nat), ...resetTable(NFT_TABLES.mangle), ''].join('\n');
}

export function chain(name: string, type: string, hook: string, priority: string, rules: string[]): string {
  return [
    `\tchain ${name} {`,
    `\t\ttype ${type} hook ${hook} priority ${priority}; policy accept;`,
    ...rules.map((r) => `\t\t${r}`),
    '\t}',
  ].join('\n');
}
