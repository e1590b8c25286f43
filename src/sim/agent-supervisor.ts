import { mkdirSync } from 'node:fs';
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
 * Runs `warren node` in a node's netns the way a DaemonSet would: its own
 * flags, that node's CNI dirs, the in-cluster API and CA addresses, the
 * projected token the simulator keeps fresh. Restarted when it exits.
 */
export function superviseAgent(node: NodePlan, clusterKubeconfig: string, caAddress: string, log: (msg: string, fields: Record<string, unknown>) => void): SupervisedProcess {
  const paths = agentPaths(node);
  mkdirSync(paths.dir, { recursive: true });
  return superviseProcess({
    name: 'node agent',
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
    ],
    logFile: paths.log,
    log: (msg, fields) => log(msg, { node: node.name, ...fields }),
  });
}
