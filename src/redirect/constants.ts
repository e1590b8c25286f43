/**
 * Redirection constants shared by the rule builders, the agent's sockets and
 * the node rules (docs/architecture.md §2, §3). They match Istio ambient's so its docs and
 * tooling carry over.
 *
 * The well-known ports are defined here once: PORTS, the agent's listeners in
 * every enrolled pod (a connection to one of them is a loop, tunnel/agent-loop.ts);
 * NODE_PORTS, the agent's own on the node (docs/architecture.md §7) and the CA's.
 */
export const PORTS = { outbound: 15001, inbound: 15006, hbone: 15008 } as const;

export const NODE_PORTS = { admin: 15000, metrics: 15020, readiness: 15021, ca: 15012 } as const;

/** Set with SO_MARK on every socket the agent makes in a pod: never redirected. */
export const PROXY_MARK = { value: 0x539, mask: 0xfff } as const;

/** Connection mark of connections the agent opened with a foreign source. */
export const CONNMARK = { value: 0x111, mask: 0xfff } as const;

/** Kubelet probes are SNATed to this on the node and always accepted in the pod. */
export const PROBE_SOURCE = { ipv4: '169.254.7.127', ipv6: 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff' } as const;

/** Policy routing that returns the app's replies to the agent's transparent sockets. */
export const POLICY_ROUTE = { table: 100, pref: 32764 } as const;

export const NFT_TABLES = { nat: 'warren-nat', mangle: 'warren-mangle', node: 'warren-node' } as const;

export const IPTABLES_CHAINS = { prerouting: 'WARREN_PRERT', output: 'WARREN_OUTPUT', postrouting: 'WARREN_POSTRT' } as const;

export const hex = (n: number): string => `0x${n.toString(16)}`;
