import { mkdir, symlink, writeFile, rm, access } from 'node:fs/promises';
import { execa } from 'execa';
import type { CommandRunner } from '../../redirect/runner.js';
import { WarrenError } from '../../errors/warren-error.js';
import { UNDERLAY, nodeConflist, type NodePlan, type TopologyPlan } from './plan.js';

/** Reference plugins the node conflist uses, looked up where Debian and upstream install them. */
const PLUGIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];
const PLUGINS = ['bridge', 'host-local', 'loopback'];

async function pluginDir(): Promise<string> {
  for (const dir of PLUGIN_DIRS) {
    try {
      await access(`${dir}/bridge`);
      return dir;
    } catch {
      // next
    }
  }
  throw new WarrenError(
    'ERR_SIM_PREREQ',
    `the CNI reference plugins are missing (looked in ${PLUGIN_DIRS.join(', ')}): apt-get install containernetworking-plugins`,
  );
}

export async function netnsExists(name: string): Promise<boolean> {
  try {
    await access(`/var/run/netns/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** The processes whose network namespace is `name` (a simulated pod's containers); none when it is gone. */
export async function netnsPids(name: string): Promise<number[]> {
  const res = await execa('ip', ['netns', 'pids', name], { reject: false });
  return res.stdout
    .split(/\s+/)
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .sort((a, b) => a - b);
}

const sysctl = (runner: CommandRunner, netns: string, ...kv: string[]): Promise<string> =>
  runner.run('sysctl', ['-q', '-w', ...kv], { netns: `/var/run/netns/${netns}` });

export async function createUnderlay(runner: CommandRunner): Promise<void> {
  const ns = { netns: `/var/run/netns/${UNDERLAY.netns}` };
  await runner.run('ip', ['netns', 'add', UNDERLAY.netns]);
  await runner.run('ip', ['link', 'set', 'lo', 'up'], ns);
  await runner.run('ip', ['link', 'add', UNDERLAY.bridge, 'type', 'bridge'], ns);
  await runner.run('ip', ['addr', 'add', `${UNDERLAY.address}/${UNDERLAY.prefix}`, 'dev', UNDERLAY.bridge], ns);
  await runner.run('ip', ['link', 'set', UNDERLAY.bridge, 'up'], ns);
  // The underlay routes between nodes' pod networks.
  await sysctl(runner, UNDERLAY.netns, 'net.ipv4.ip_forward=1');
}

export async function createNode(runner: CommandRunner, node: NodePlan): Promise<void> {
  const underlay = { netns: `/var/run/netns/${UNDERLAY.netns}` };
  const ns = { netns: `/var/run/netns/${node.netns}` };
  const uplink = `wu${node.index}`; // interface names are limited to 15 bytes
  await runner.run('ip', ['netns', 'add', node.netns]);
  await runner.run('ip', ['link', 'set', 'lo', 'up'], ns);
  await runner.run('ip', ['link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns], underlay);
  await runner.run('ip', ['link', 'set', uplink, 'master', UNDERLAY.bridge, 'up'], underlay);
  await runner.run('ip', ['addr', 'add', `${node.address}/${UNDERLAY.prefix}`, 'dev', 'eth0'], ns);
  await runner.run('ip', ['link', 'set', 'eth0', 'up'], ns);
  await runner.run('ip', ['route', 'add', 'default', 'via', UNDERLAY.address], ns);
  await runner.run('ip', ['route', 'add', node.podCidr, 'via', node.address], underlay);
  await sysctl(runner, node.netns, 'net.ipv4.ip_forward=1');
  await writeNodeCniDirs(node);
}

/** The node's CNI conf and bin dirs, as a node image would have them before warren is installed. */
export async function writeNodeCniDirs(node: NodePlan): Promise<void> {
  const source = await pluginDir();
  await mkdir(node.cniConfDir, { recursive: true });
  await mkdir(node.cniBinDir, { recursive: true });
  await mkdir(node.ipamDir, { recursive: true });
  for (const plugin of PLUGINS) {
    await symlink(`${source}/${plugin}`, `${node.cniBinDir}/${plugin}`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  await writeFile(`${node.cniConfDir}/10-wrn-pods.conflist`, JSON.stringify(nodeConflist(node), null, 2) + '\n');
}

/** Every netns whose name starts with wrn- (the simulator's), pods first. */
export async function listSimNetns(): Promise<string[]> {
  const out = (await execa('ip', ['netns', 'list'])).stdout;
  const names = out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith('wrn-'));
  const depth = (n: string): number => (n === UNDERLAY.netns ? 0 : n.split('-').length);
  return names.sort((a, b) => depth(b) - depth(a));
}

export async function createTopologyNetwork(runner: CommandRunner, plan: TopologyPlan): Promise<void> {
  await createUnderlay(runner);
  for (const node of plan.nodes) await createNode(runner, node);
}

/** Removes every simulator netns (pods, nodes, underlay) and the state dir's node data. */
export async function destroyTopologyNetwork(runner: CommandRunner, plan: TopologyPlan): Promise<void> {
  for (const name of await listSimNetns()) await runner.run('ip', ['netns', 'del', name]).catch(() => undefined);
  await rm(`${plan.stateDir}/nodes`, { recursive: true, force: true });
}
