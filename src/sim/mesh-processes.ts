import { readdir, readFile } from 'node:fs/promises';

/** A `warren node` agent or `warren ca` of one simulated cluster. */
export interface MeshProcess {
  pid: number;
  role: 'node' | 'ca';
  /** the agent's --node-name */
  node?: string;
}

const flag = (argv: readonly string[], name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
};

/**
 * What a command line (/proc/<pid>/cmdline: node, the CLI entry, the
 * subcommand, flags) is for the cluster whose in-cluster kubeconfig is
 * `clusterKubeconfig`: that path is under the cluster's state dir, so other
 * clusters' processes never match. A one-shot `warren node --uninstall` is
 * not an agent.
 */
export function meshRoleOf(argv: readonly string[], clusterKubeconfig: string): Omit<MeshProcess, 'pid'> | undefined {
  const sub = argv[2];
  if ((sub !== 'node' && sub !== 'ca') || flag(argv, '--kubeconfig') !== clusterKubeconfig) return undefined;
  if (sub === 'ca') return { role: 'ca' };
  if (argv.includes('--uninstall')) return undefined;
  const node = flag(argv, '--node-name');
  return node === undefined ? { role: 'node' } : { role: 'node', node };
}

/** The cluster's agents and CA running on this machine now. */
export async function listMeshProcesses(clusterKubeconfig: string): Promise<MeshProcess[]> {
  const out: MeshProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // Processes exit while we look: an unreadable cmdline is no process.
    const text = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const role = meshRoleOf(text.split('\0'), clusterKubeconfig);
    if (role !== undefined) out.push({ pid: Number(entry), ...role });
  }
  return out;
}
