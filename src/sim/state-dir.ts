import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { WarrenError } from '../errors/warren-error.js';

export const DEFAULT_STATE_DIR = '/run/warren-sim';
/** The API server's port on the host's loopback (kubectl from the host); in the cluster it is 10.255.0.1:6443. */
export const DEFAULT_HOST_API_PORT = 16443;

/** The files of one simulated cluster under its state dir. */
export const statePaths = (dir: string) => ({
  dir,
  cluster: `${dir}/cluster.json`,
  lock: `${dir}/lock`,
  pid: `${dir}/daemon.pid`,
  ready: `${dir}/ready`,
  log: `${dir}/sim.log`,
  caLog: `${dir}/ca.log`,
  apiserver: `${dir}/apiserver`,
  kubeconfig: `${dir}/kubeconfig`,
  clusterKubeconfig: `${dir}/kubeconfig.cluster`,
});

const clusterSchema = z.object({
  nodes: z.array(z.string()).min(1),
  hostApiPort: z.number().int().min(1).max(65535),
  createdAt: z.string(),
});
export type ClusterFile = z.infer<typeof clusterSchema>;

export function readClusterFile(dir: string): ClusterFile | undefined {
  let text: string;
  try {
    text = readFileSync(statePaths(dir).cluster, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = clusterSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new WarrenError('ERR_SIM_STATE', `${statePaths(dir).cluster}: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** The daemon's pid when it is alive. */
export function runningDaemonPid(dir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(statePaths(dir).pid, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}
