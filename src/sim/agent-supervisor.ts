import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { WARREN_MAIN } from './warren-main.js';
import type { NodePlan } from './topology/plan.js';


/** Where a node's agent keeps its socket and state, and writes its log (`warren sim logs node/<name>`). */
export const agentPaths = (node: NodePlan) => ({
  dir: `${node.dir}/warren`,
  socket: `${node.dir}/warren/cni.sock`,
  log: `${node.dir}/agent.log`,
});

export interface AgentSupervisor {
  pid(): number | undefined;
  stop(): Promise<void>;
}

/**
 * Runs `warren node` in a node's netns the way a DaemonSet would: its own
 * flags, that node's CNI dirs, the in-cluster API address. Like the kubelet
 * for a DaemonSet pod, it restarts the agent when it exits (after 2 s).
 */
export function superviseAgent(node: NodePlan, clusterKubeconfig: string, log: (msg: string, fields: Record<string, unknown>) => void): AgentSupervisor {
  const paths = agentPaths(node);
  mkdirSync(paths.dir, { recursive: true });
  let child: ChildProcess | undefined;
  let stopping = false;
  let restart: NodeJS.Timeout | undefined;
  const start = (): void => {
    const out = openSync(paths.log, 'a');
    child = spawn(
      'ip',
      [
        'netns', 'exec', node.netns,
        process.execPath, WARREN_MAIN, 'node',
        '--kubeconfig', clusterKubeconfig,
        '--node-name', node.name,
        '--cni-conf-dir', node.cniConfDir,
        '--cni-bin-dir', node.cniBinDir,
        '--cni-socket', paths.socket,
        '--state-dir', paths.dir,
        '--drain-seconds', '5',
      ],
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
    const current = child;
    current.once('exit', (code, signal) => {
      if (stopping) return;
      log('node agent exited; restarting in 2 s', { node: node.name, code, signal });
      restart = setTimeout(start, 2000);
    });
  };
  start();
  return {
    pid: () => child?.pid,
    async stop() {
      stopping = true;
      if (restart) clearTimeout(restart);
      const c = child;
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      const kill = setTimeout(() => c.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
