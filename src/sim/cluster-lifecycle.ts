import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { WARREN_MAIN } from './warren-main.js';
import { execa } from 'execa';
import { WarrenError } from '../errors/warren-error.js';
import { systemRunner } from '../redirect/runner.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { writeLocalAgents } from '../cli/local-agents.js';
import { DEFAULT_HOST_API_PORT, readClusterFile, runningDaemonPid, statePaths } from './state-dir.js';
import { createTopologyNetwork, listSimNetns, netnsExists, netnsPids } from './topology/network.js';
import { UNDERLAY, defaultNodeNames, planTopology } from './topology/plan.js';


export interface UpOptions {
  stateDir: string;
  nodes: number;
  hostApiPort?: number;
  progress: (line: string) => void;
}

const SIM_TOOLS: ReadonlyArray<readonly [bin: string, pkg: string]> = [['ip', 'iproute2'], ['nft', 'nftables'], ['nsenter', 'util-linux']];

/** Refuses clearly what cannot work: not root, or tools missing (the simulator's, and `extraTools` [binary, Debian package]). */
export async function checkPrerequisites(extraTools: ReadonlyArray<readonly [bin: string, pkg: string]> = []): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new WarrenError('ERR_SIM_PREREQ', 'warren sim needs root (it creates network namespaces): run it with sudo');
  }
  for (const [bin, pkg] of [...SIM_TOOLS, ...extraTools]) {
    const found = await execa('sh', ['-c', `command -v ${bin}`], { reject: false });
    if (found.exitCode !== 0) throw new WarrenError('ERR_SIM_PREREQ', `${bin} is missing: apt-get install -y ${pkg} (or run ./scripts/install-deps.sh)`);
  }
  if (!existsSync('/usr/lib/cni/bridge') && !existsSync('/opt/cni/bin/bridge')) {
    throw new WarrenError('ERR_SIM_PREREQ', 'the CNI reference plugins are missing: apt-get install -y containernetworking-plugins (or run ./scripts/install-deps.sh)');
  }
}

/** One cluster per state dir, and one per machine (the underlay netns name is global): the lock file makes that atomic. */
function takeLock(stateDir: string): void {
  const paths = statePaths(stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  let fd: number;
  try {
    fd = openSync(paths.lock, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = runningDaemonPid(stateDir);
    throw new WarrenError(
      'ERR_SIM_RUNNING',
      pid === undefined
        ? `${stateDir} holds a simulated cluster that is not running (or is still starting); run \`warren sim down --state-dir ${stateDir}\` first`
        : `a simulated cluster is already running from ${stateDir} (pid ${pid}); use it, or run \`warren sim down --state-dir ${stateDir}\` first`,
    );
  }
  writeSync(fd, String(process.pid));
  closeSync(fd);
}

export async function clusterUp(options: UpOptions): Promise<void> {
  await checkPrerequisites();
  if (await netnsExists(UNDERLAY.netns)) {
    throw new WarrenError('ERR_SIM_RUNNING', `netns ${UNDERLAY.netns} exists: another simulated cluster runs on this machine (or its remains); \`warren sim status\` shows it, \`warren sim down\` removes it`);
  }
  takeLock(options.stateDir);
  const paths = statePaths(options.stateDir);
  const plan = planTopology(options.stateDir, defaultNodeNames(options.nodes));
  writeFileAtomic(paths.cluster, JSON.stringify({ nodes: plan.nodes.map((n) => n.name), hostApiPort: options.hostApiPort ?? DEFAULT_HOST_API_PORT, createdAt: new Date().toISOString() }), 0o644);
  writeLocalAgents(options.stateDir, plan.nodes.map((n) => ({ node: n.name, netns: n.netns })));
  options.progress(`network: underlay ${UNDERLAY.netns} and ${plan.nodes.length} node netns`);
  await createTopologyNetwork(systemRunner, plan);
  options.progress('control plane: API server, controllers, kubelets, kube-proxy, DNS');
  const log = openSync(paths.log, 'a');
  const daemon = spawn(process.execPath, [WARREN_MAIN, 'sim', 'serve', '--state-dir', options.stateDir], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  daemon.unref();
  const deadline = Date.now() + 60_000;
  while (!existsSync(paths.ready)) {
    if (daemon.exitCode !== null || Date.now() > deadline) {
      const tail = readFileSync(paths.log, 'utf8').split('\n').slice(-15).join('\n');
      throw new WarrenError('ERR_SIM_START', `the simulator's control plane did not start (see ${paths.log}):\n${tail}\nrun \`warren sim down --state-dir ${options.stateDir}\` to clean up`);
    }
    await sleep(100);
  }
}

async function killNetnsProcesses(netns: string): Promise<void> {
  for (const pid of await netnsPids(netns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Stops the daemon (which stops pods and runs CNI DEL), then removes
 * whatever is left even after a crash: processes in simulator netns, the
 * netns, their /etc/netns overlays, and the state dir.
 */
export async function clusterDown(stateDir: string, progress: (line: string) => void): Promise<void> {
  await checkPrerequisites();
  const pid = runningDaemonPid(stateDir);
  if (pid !== undefined) {
    progress(`stopping control plane (pid ${pid}) and pods`);
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 45_000;
    while (runningDaemonPid(stateDir) !== undefined && Date.now() < deadline) await sleep(100);
    if (runningDaemonPid(stateDir) !== undefined) process.kill(pid, 'SIGKILL');
  }
  const netns = await listSimNetns();
  if (netns.length > 0) progress(`removing ${netns.length} network namespaces`);
  for (const ns of netns) {
    await killNetnsProcesses(ns);
    await systemRunner.run('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
  for (const entry of await readdir('/etc/netns').catch(() => [] as string[])) {
    if (entry.startsWith('wrn-')) rmSync(`/etc/netns/${entry}`, { recursive: true, force: true });
  }
  if (readClusterFile(stateDir) !== undefined || existsSync(statePaths(stateDir).lock)) progress(`removing ${stateDir}`);
  rmSync(stateDir, { recursive: true, force: true });
}

export interface ClusterStatus {
  stateDir: string;
  stateDirExists: boolean;
  daemonPid?: number;
  netns: string[];
  nodes?: string[];
}

export async function clusterStatus(stateDir: string): Promise<ClusterStatus> {
  const pid = runningDaemonPid(stateDir);
  const cluster = readClusterFile(stateDir);
  return {
    stateDir,
    stateDirExists: existsSync(stateDir),
    ...(pid === undefined ? {} : { daemonPid: pid }),
    netns: await listSimNetns(),
    ...(cluster === undefined ? {} : { nodes: cluster.nodes }),
  };
}
