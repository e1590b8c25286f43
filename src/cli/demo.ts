import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { WarrenError } from '../errors/warren-error.js';
import { applyManifests } from '../sim/client/apply.js';
import { adminKubeConfig, type SimClient } from '../sim/client/cluster-client.js';
import { httpGetFromPod } from '../sim/client/pod-http.js';
import { clusterUp } from '../sim/cluster-lifecycle.js';
import { DEMO_MANIFEST, DEMO_NAMESPACE } from '../sim/demo-manifest.js';
import { DEFAULT_STATE_DIR, runningDaemonPid } from '../sim/state-dir.js';
import { podNetnsName } from '../sim/topology/plan.js';

const HELP = `Usage: warren demo [--state-dir DIR] [--nodes N]

A guided tour on the embedded simulator: starts a cluster (unless one is
running), deploys an echo service on two nodes and a client pod, and shows
the client reaching the service by DNS name and ClusterIP across nodes.`;

const step = (text: string): void => console.log(`\n▸ ${text}`);

async function waitForPods(client: SimClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pods = (await client.core.listNamespacedPod({ namespace: DEMO_NAMESPACE })).items;
    const ready = pods.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (pods.length === 3 && ready.length === 3) return;
    await sleep(250);
  }
  throw new WarrenError('ERR_DEMO', `the demo pods did not become ready in ${timeoutMs / 1000} s; look at \`warren sim kubectl get pods -n ${DEMO_NAMESPACE}\``);
}

export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'state-dir': { type: 'string', default: DEFAULT_STATE_DIR }, nodes: { type: 'string', default: '2' }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const stateDir = values['state-dir'];
  if (runningDaemonPid(stateDir) === undefined) {
    step(`starting a simulated cluster (${values.nodes} nodes) in ${stateDir}`);
    await clusterUp({ stateDir, nodes: Number(values.nodes), progress: (l) => console.log(`  ${l}`) });
  } else step(`using the simulated cluster already running from ${stateDir}`);
  const client = adminKubeConfig(stateDir);

  step('deploying: Deployment web (http-echo ×2), Service web, Pod client');
  for (const line of await applyManifests(client, DEMO_MANIFEST)) console.log(`  ${line}`);
  await waitForPods(client, 90_000);
  const pods = (await client.core.listNamespacedPod({ namespace: DEMO_NAMESPACE })).items;
  for (const p of pods) console.log(`  ${p.metadata!.name!.padEnd(28)} ${String(p.status?.podIP).padEnd(12)} on ${p.spec?.nodeName}`);

  const clientPod = pods.find((p) => p.metadata?.name === 'client')!;
  const netns = podNetnsName(clientPod.spec!.nodeName!, DEMO_NAMESPACE, 'client');
  step('cluster DNS, from inside the client pod (its resolv.conf points at 10.255.0.1)');
  const resolved = await execa('ip', ['netns', 'exec', netns, 'getent', 'hosts', `web.${DEMO_NAMESPACE}.svc.cluster.local`]);
  const clusterIp = resolved.stdout.split(/\s+/)[0]!;
  console.log(`  web.${DEMO_NAMESPACE}.svc.cluster.local → ${clusterIp}`);

  step(`six requests from the client to ${clusterIp}:80 (kube-proxy spreads them over both nodes)`);
  for (let i = 0; i < 6; i++) {
    const reply = await httpGetFromPod(netns, clusterIp, 80);
    const served = pods.find((p) => p.metadata?.name === reply.pod);
    console.log(`  answered by ${reply.pod} on ${served?.spec?.nodeName ?? '?'}; it saw the client as ${reply.client.ip}`);
  }

  step('next');
  console.log(`  warren sim kubectl get pods -A -o wide
  warren sim exec ${DEMO_NAMESPACE}/client -- getent hosts web
  warren sim logs ${DEMO_NAMESPACE}/client
  warren sim down            # removes everything the simulator made`);
  return 0;
}
