import { mkdirSync } from 'node:fs';
import { withProxyNodeOptions } from '../config/proxy-node-options.js';
import { WARREN_MAIN } from './warren-main.js';
import { superviseProcess, type SupervisedProcess } from './process-supervisor.js';
import type { NodePlan } from './topology/plan.js';

/** Where a node's agent keeps its socket and state, and writes its log (`warren sim logs node/<name>`). */
export const agentPaths = (node: NodePlan) => ({
  dir: `${node.dir}/warren`,
  socket: `${node.dir}/warren/cni.sock`,
  caToken: `${node.dir}/warren/ca-token`,
  log: `${node.dir}/agent.log`,
});

/**
 * `warren node` in a node's netns, with what a DaemonSet would give it: that
 * node's CNI dirs, the in-cluster API and CA addresses, the projected token,
 * its NODE_OPTIONS (src/config/proxy-node-options.ts).
 * `extra` adds flags (`--uninstall` for the cleanup run).
 */
export function agentCommand(node: NodePlan, clusterKubeconfig: string, caAddress: string, extra: readonly string[] = []): { command: string; args: string[]; env: Record<string, string> } {
  const paths = agentPaths(node);
  return {
    command: 'ip',
    args: [
      'netns', 'exec', node.netns,
      process.execPath, WARREN_MAIN, 'node',
      '--kubeconfig', clusterKubeconfig,
      '--node-name', node.name,
      '--cni-conf-dir', node.cniConfDir,
      '--cni-bin-dir', node.cniBinDir,
      '--cni-socket', paths.socket,
      '--state-dir', paths.dir,
      '--drain-seconds', '5',
      '--ca-address', caAddress,
      '--ca-token-file', paths.caToken,
      ...extra,
    ],
    env: { NODE_OPTIONS: withProxyNodeOptions(process.env.NODE_OPTIONS) },
  };
}

/** Runs a node's agent the way a DaemonSet would, restarted when it exits. */
export function superviseAgent(node: NodePlan, clusterKubeconfig: string, caAddress: string, log: (msg: string, fields: Record<string, unknown>) => void): SupervisedProcess {
  const paths = agentPaths(node);
  mkdirSync(paths.dir, { recursive: true });
  return superviseProcess({
    name: 'node agent',
    ...agentCommand(node, clusterKubeconfig, caAddress),
    logFile: paths.log,
    log: (msg, fields) => log(msg, { node: node.name, ...fields }),
  });
}
