import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import type { CommandRunner } from '../../redirect/runner.js';
import { WarrenError } from '../../errors/warren-error.js';
import { cniAdd, cniDel, parseConflist, type Conflist } from './cni-runtime.js';
import { CLUSTER_DOMAIN, UNDERLAY, podNetnsName, type NodePlan } from '../topology/plan.js';

/** A pod's network sandbox: its netns, wired by the node's CNI chain. */
export interface PodSandbox {
  netns: string;
  path: string;
  ips: string[];
  containerId: string;
  /** the CNI_ARGS the kubelet passes on ADD and again on DEL */
  args: Record<string, string>;
  /** how long the CNI chain's ADD took (benchmarks read it from the kubelet's log) */
  cniAddMs: number;
}

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/**
 * The network config the runtime uses, chosen as containerd does: the
 * lexically first *.conflist / *.conf / *.json in the conf dir. A plain .conf
 * (one plugin) is treated as a list of one.
 */
export async function loadNodeConflist(confDir: string): Promise<Conflist> {
  const files = (await readdir(confDir)).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  const first = files[0];
  if (first === undefined) throw new WarrenError('ERR_CNI_CONFIG', `no CNI network config in ${confDir}`);
  const text = await readFile(`${confDir}/${first}`, 'utf8');
  if (first.endsWith('.conflist')) return parseConflist(text, `${confDir}/${first}`);
  const single = JSON.parse(text) as Record<string, unknown>;
  return parseConflist(
    JSON.stringify({ cniVersion: single.cniVersion, name: single.name, plugins: [single] }),
    `${confDir}/${first}`,
  );
}

/** resolv.conf for the pod, as the kubelet writes for dnsPolicy ClusterFirst. */
export function podResolvConf(namespace: string): string {
  return [
    `nameserver ${UNDERLAY.address}`,
    `search ${namespace}.svc.${CLUSTER_DOMAIN} svc.${CLUSTER_DOMAIN} ${CLUSTER_DOMAIN}`,
    'options ndots:5',
    '',
  ].join('\n');
}

export async function createPodSandbox(runner: CommandRunner, node: NodePlan, pod: PodRef): Promise<PodSandbox> {
  const netns = podNetnsName(node.name, pod.namespace, pod.name);
  const path = `/var/run/netns/${netns}`;
  const containerId = pod.uid.replace(/-/g, '');
  const args = { K8S_POD_NAMESPACE: pod.namespace, K8S_POD_NAME: pod.name, K8S_POD_UID: pod.uid, K8S_POD_INFRA_CONTAINER_ID: containerId };
  await runner.run('ip', ['netns', 'add', netns]);
  try {
    await runner.run('ip', ['link', 'set', 'lo', 'up'], { netns: path });
    // `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc: the pod's DNS config.
    await mkdir(`/etc/netns/${netns}`, { recursive: true });
    await writeFile(`/etc/netns/${netns}/resolv.conf`, podResolvConf(pod.namespace));
    const started = performance.now();
    const result = await cniAdd(await loadNodeConflist(node.cniConfDir), {
      containerId,
      netns: path,
      ifName: 'eth0',
      binDirs: [node.cniBinDir],
      args,
      runInNetns: `/var/run/netns/${node.netns}`,
    });
    const ips = (result.ips ?? []).map((ip) => ip.address.split('/')[0] ?? '').filter((ip) => ip !== '');
    return { netns, path, ips: [...ips.filter(isIPv4), ...ips.filter((ip) => !isIPv4(ip))], containerId, args, cniAddMs: performance.now() - started };
  } catch (err) {
    await destroyPodSandbox(runner, node, { netns, path, ips: [], containerId, args, cniAddMs: 0 }).catch(() => undefined);
    throw err;
  }
}

/** CNI DEL (best effort, as the kubelet does), then the netns and its /etc overlay. */
export async function destroyPodSandbox(runner: CommandRunner, node: NodePlan, sandbox: PodSandbox): Promise<void> {
  await cniDel(await loadNodeConflist(node.cniConfDir), {
    containerId: sandbox.containerId,
    netns: sandbox.path,
    ifName: 'eth0',
    binDirs: [node.cniBinDir],
    args: sandbox.args,
    runInNetns: `/var/run/netns/${node.netns}`,
  }).catch(() => undefined);
  await runner.run('ip', ['netns', 'del', sandbox.netns]).catch(() => undefined);
  await rm(`/etc/netns/${sandbox.netns}`, { recursive: true, force: true });
}
