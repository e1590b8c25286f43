import { z } from 'zod';
import { WarrenError } from '../../errors/warren-error.js';

/**
 * The simulated cluster's network, as plain data (docs/architecture.md §8):
 *   wrn-underlay  bridge wrn0 10.255.0.1/16: the API server, cluster DNS,
 *                 and the router between nodes (a route per node pod CIDR)
 *   wrn-<node>    eth0 10.255.1.<i>/16 to the underlay, bridge cni0 made by
 *                 the bridge CNI plugin, pods 10.244.<i>.0/24
 *   wrn-<node>-<ns>-<pod>  one netns per pod, wired by the node's conflist
 */
export const UNDERLAY = {
  netns: 'wrn-underlay',
  bridge: 'wrn0',
  address: '10.255.0.1',
  prefix: 16,
  apiServerPort: 6443,
  dnsPort: 53,
} as const;

export const CLUSTER_DOMAIN = 'cluster.local';
export const SERVICE_CIDR = '10.96.0.0/16';

export interface NodePlan {
  name: string;
  index: number;
  netns: string;
  /** eth0 address on the underlay */
  address: string;
  podCidr: string;
  /** cni0's address, the pods' default gateway */
  podGateway: string;
  dir: string;
  cniConfDir: string;
  cniBinDir: string;
  ipamDir: string;
}

export interface TopologyPlan {
  stateDir: string;
  nodes: NodePlan[];
}

const nodeName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a node name is lowercase letters, digits and dashes (RFC 1123)')
  .max(20, 'node names are kept short: netns and interface names derive from them');

export function planTopology(stateDir: string, nodeNames: string[]): TopologyPlan {
  if (nodeNames.length < 1 || nodeNames.length > 200) {
    throw new WarrenError('ERR_SIM_CONFIG', `a simulated cluster has 1 to 200 nodes, got ${nodeNames.length}`);
  }
  if (new Set(nodeNames).size !== nodeNames.length) throw new WarrenError('ERR_SIM_CONFIG', 'node names must be unique');
  const nodes = nodeNames.map((name, i): NodePlan => {
    const res = nodeName.safeParse(name);
    if (!res.success) throw new WarrenError('ERR_SIM_CONFIG', `node name ${JSON.stringify(name)}: ${res.error.issues[0]?.message}`);
    const index = i + 1;
    const dir = `${stateDir}/nodes/${name}`;
    return {
      name,
      index,
      netns: `wrn-${name}`,
      address: `10.255.1.${index}`,
      podCidr: `10.244.${index}.0/24`,
      podGateway: `10.244.${index}.1`,
      dir,
      cniConfDir: `${dir}/cni/net.d`,
      cniBinDir: `${dir}/cni/bin`,
      ipamDir: `${dir}/cni/ipam`,
    };
  });
  return { stateDir, nodes };
}

export function defaultNodeNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `node-${i + 1}`);
}

/** The conflist a node's "primary CNI" would install: bridge + host-local, as a kubeadm cluster with the reference plugins. */
export function nodeConflist(node: NodePlan): object {
  return {
    cniVersion: '1.0.0',
    name: 'wrn-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: node.ipamDir,
          ranges: [[{ subnet: node.podCidr, gateway: node.podGateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
    ],
  };
}

/** Pod netns name; includes the namespace so equal pod names in two namespaces never collide. */
export function podNetnsName(node: string, namespace: string, pod: string): string {
  return `wrn-${node}-${namespace}-${pod}`;
}
