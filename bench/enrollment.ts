import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { execa } from 'execa';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createTopology } from '../test/helpers/netns.js';
import { buildPodNftRemoveScript, buildPodNftScript } from '../src/redirect/nft-pod.js';
import { applyNftScript } from '../src/redirect/nft-apply.js';
import { systemRunner } from '../src/redirect/runner.js';
import { agentPaths } from '../src/sim/agent-supervisor.js';
import { planTopology } from '../src/sim/topology/plan.js';
import { agentPid } from '../test/helpers/sim-cluster.js';

const WARREN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface EnrollmentBenchResult {
  pods: number;
  enrollSeconds: number;
  cniAddMs: Record<'excluded' | 'unlabeled' | 'enrolled', { p50: number; p99: number; n: number }>;
  /** the replacement agent's first log line → its last "pod enrolled" (and from the kill) */
  resync: { pods: number; fromStartSeconds: number; fromKillSeconds: number };
  /** the installed plugin binary run alone (VERSION), and `/bin/true` spawned the same way */
  pluginStartMs: { p50: number; p99: number; trueP50: number; trueP99: number; n: number };
  agentRssIdleMiB: number;
  agentRssEnrolledMiB: number;
  /** after a full GC in the agent: idle, and with the fleet enrolled */
  afterGc: { idle: { rssMiB: number; heapMiB: number }; enrolled: { rssMiB: number; heapMiB: number } };
  enrolledOnNode: number;
  /** one pod's nft rules applied and removed, 40 times in one netns: as an `nsenter … nft -f -` process, and through libnftables in the addon */
  podNftMs: { process: { p50: number; p99: number }; library: { p50: number; p99: number }; n: number };
  /** p50 / p99 of each phase of the label-driven enrollments, as the agent logged them ("pod enrolled" ms) */
  phasesMs: Record<string, { p50: number; p99: number }>;
}

const deployment = (ns: string, name: string, replicas: number): string =>
  `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  replicas: ${replicas}\n  selector: {matchLabels: {app: ${name}}}\n  template:\n    metadata: {labels: {app: ${name}}}\n    spec:\n      containers: [{name: app, image: busybox, command: [sleep, infinity]}]\n`;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

interface AgentMemory {
  collected: boolean;
  rss: number;
  heapUsed: number;
}

/** The agent's memory after a full GC (admin /memory?gc=1; the sim runs with --expose-gc for this bench). */
async function agentMemoryAfterGc(node: string): Promise<{ rssMiB: number; heapMiB: number }> {
  const script = "fetch('http://127.0.0.1:15000/memory?gc=1').then((r) => r.text()).then((t) => process.stdout.write(t))";
  const m = JSON.parse((await execa('ip', ['netns', 'exec', `wrn-${node}`, process.execPath, '-e', script])).stdout) as AgentMemory;
  if (!m.collected) throw new Error('the agent did not collect garbage: not started with --expose-gc?');
  return { rssMiB: m.rss / 1024 / 1024, heapMiB: m.heapUsed / 1024 / 1024 };
}

/** CNI ADD times the kubelet logged for pods of `namespace`. */
async function cniTimes(logPath: string, namespace: string): Promise<number[]> {
  return (await readFile(logPath, 'utf8'))
    .split('\n')
    .filter((l) => l.includes('"pod sandbox ready"') && l.includes(`"pod":"${namespace}/`))
    .map((l) => (JSON.parse(l) as { cniAddMs: number }).cniAddMs);
}

interface LogLine {
  time: number;
  msg: string;
  ms?: Record<string, number>;
}

/** Where the enrollments' time went, per phase (src/agent/enrollment-manager.ts logs it). */
function phases(lines: LogLine[]): Record<string, { p50: number; p99: number }> {
  const byPhase = new Map<string, number[]>();
  for (const l of lines) if (l.msg === 'pod enrolled') for (const [k, v] of Object.entries(l.ms ?? {})) byPhase.set(k, [...(byPhase.get(k) ?? []), v]);
  return Object.fromEntries([...byPhase].map(([k, v]) => [k, { p50: percentile(v, 50), p99: percentile(v, 99) }]));
}

async function agentLog(stateDir: string, node: string): Promise<LogLine[]> {
  return (await readFile(agentPaths(planTopology(stateDir, [node]).nodes[0]!).log, 'utf8'))
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Wall time of `n` sequential runs of `file`, as a container runtime runs a plugin (bare env, stdin). */
function spawnTimes(file: string, n: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = spawnSync(file, [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' });
    times.push(performance.now() - t0);
    if (res.status !== 0) throw new Error(`${file} exited ${res.status}: ${res.stderr}`);
  }
  return times;
}

/**
 * Label a namespace of 110 running pods (a full node) on one node and time until all
 * are annotated enabled; kill the agent and time its replacement re-enrolling
 * them; then pod creations, one after the other, in each of three namespaces
 * for CNI ADD latency: excluded (the plugin answers without the agent),
 * unlabeled (the agent is asked and declines) and enrolled (the agent
 * programs rules and listeners before answering); the plugin binary's own
 * start; agent RSS before and after.
 */
/** The rules step alone, both ways, interleaved in one throwaway netns (what the nft backend did per pod before, and does now). */
async function podNftStep(n: number): Promise<EnrollmentBenchResult['podNftMs']> {
  const topo = await createTopology(1);
  try {
    const pod = topo.pods[0]!;
    const apply = buildPodNftScript({ podIPs: [pod.ipv4, pod.ipv6] });
    const remove = buildPodNftRemoveScript();
    const ways = {
      process: (script: string) => systemRunner.run('nft', ['-f', '-'], { input: script, netns: pod.path }),
      library: (script: string) => applyNftScript(pod.path, script),
    };
    const times: Record<keyof typeof ways, number[]> = { process: [], library: [] };
    for (let i = 0; i < n; i++) {
      for (const way of ['process', 'library'] as const) {
        const t0 = performance.now();
        await ways[way](apply);
        await ways[way](remove);
        times[way].push(performance.now() - t0);
      }
    }
    const stats = (v: number[]) => ({ p50: percentile(v, 50), p99: percentile(v, 99) });
    return { process: stats(times.process), library: stats(times.library), n };
  } finally {
    await topo.destroy();
  }
}

export async function benchEnrollment(pods = 110, creations = 40): Promise<EnrollmentBenchResult> {
  const podNftMs = await podNftStep(40);
  const stateDir = await mkdtemp(`${tmpdir()}/warren-bench-enroll-`);
  // --expose-gc reaches the agents: memory is read after a full GC (admin /memory?gc=1).
  const run = (...args: string[]) => execa(process.execPath, [WARREN, ...args], { timeout: 300_000, env: { NODE_OPTIONS: '--expose-gc' } });
  try {
    // One node, so one agent holds all the pods (a /24 of pod IPs: 110 + 3 × 40 fit).
    await run('sim', 'up', '--nodes', '1', '--state-dir', stateDir, '--api-port', '16644');
    const kc = new KubeConfig();
    kc.loadFromFile(`${stateDir}/kubeconfig`);
    const core = kc.makeApiClient(CoreV1Api);
    const apply = async (name: string, text: string): Promise<void> => {
      await writeFile(`${stateDir}/${name}.yaml`, text);
      await run('sim', 'apply', '-f', `${stateDir}/${name}.yaml`, '--state-dir', stateDir);
    };
    const waitRunning = async (ns: string, n: number): Promise<void> => {
      const deadline = Date.now() + 300_000;
      while ((await core.listNamespacedPod({ namespace: ns })).items.filter((p) => p.status?.phase === 'Running').length < n) {
        if (Date.now() > deadline) throw new Error(`${ns}: pods not running in 300 s`);
        await sleep(200);
      }
    };
    await apply('fleet', `apiVersion: v1\nkind: Namespace\nmetadata: {name: fleet}\n---\n${deployment('fleet', 'fleet', pods)}`);
    await waitRunning('fleet', pods);
    const agent1 = await agentPid(stateDir, 'node-1');
    if (agent1 === undefined) throw new Error('no agent on node-1');
    const agentRssIdleMiB = rssMiB(agent1);
    const idleAfterGc = await agentMemoryAfterGc('node-1');

    const t0 = performance.now();
    await core.patchNamespace({ name: 'fleet', body: { metadata: { labels: { 'warren.io/dataplane-mode': 'ambient' } } } }, mergePatch);
    for (;;) {
      const list = (await core.listNamespacedPod({ namespace: 'fleet' })).items;
      if (list.filter((p) => p.metadata?.annotations?.['warren.io/redirection'] === 'enabled').length === pods) break;
      if (performance.now() - t0 > 120_000) throw new Error('pods not enrolled in 120 s');
      await sleep(20);
    }
    const enrollSeconds = (performance.now() - t0) / 1000;
    await sleep(1000);
    const agentRssEnrolledMiB = rssMiB(agent1);
    const enrolledAfterGc = await agentMemoryAfterGc('node-1');
    const enrolledOnNode = (await core.listNamespacedPod({ namespace: 'fleet', fieldSelector: 'spec.nodeName=node-1' })).items.length;

    // Agent restart: the supervisor starts a new one (as a DaemonSet would), which re-finds every pod.
    const labelRun = await agentLog(stateDir, 'node-1');
    const phasesMs = phases(labelRun);
    const before = labelRun.length;
    const killedAt = Date.now();
    process.kill(agent1, 'SIGKILL');
    let resync: EnrollmentBenchResult['resync'] | undefined;
    while (resync === undefined) {
      if (Date.now() - killedAt > 120_000) throw new Error('pods not re-enrolled in 120 s after an agent restart');
      await sleep(100);
      const lines = (await agentLog(stateDir, 'node-1')).slice(before);
      const enrolled = lines.filter((l) => l.msg === 'pod enrolled');
      if (enrolled.length < pods) continue;
      const last = enrolled[enrolled.length - 1]!.time;
      resync = { pods: enrolled.length, fromStartSeconds: (last - lines[0]!.time) / 1000, fromKillSeconds: (last - killedAt) / 1000 };
    }
    const ready = (await agentPid(stateDir, 'node-1')) !== undefined;
    if (!ready) throw new Error('no agent after the restart');

    const plugin = `${planTopology(stateDir, ['node-1']).nodes[0]!.cniBinDir}/warren-cni`;
    spawnTimes(plugin, 5); // page cache, lazy binding
    const pluginTimes = spawnTimes(plugin, 100);
    const trueTimes = spawnTimes('/bin/true', 100);
    const pluginStartMs = { p50: percentile(pluginTimes, 50), p99: percentile(pluginTimes, 99), trueP50: percentile(trueTimes, 50), trueP99: percentile(trueTimes, 99), n: 100 };

    await apply('namespaces', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: meshed, labels: {warren.io/dataplane-mode: ambient}}\n');
    // One pod at a time: the latency of one ADD, not of a burst queueing for two cores.
    for (const ns of ['kube-system', 'plain', 'meshed']) {
      for (let i = 0; i < creations; i++) {
        await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: `p-${i}` }, spec: { containers: [{ name: 'app', image: 'busybox', command: ['sleep', 'infinity'] }] } } });
        await waitRunning(ns, i + 1);
      }
    }
    const log = `${stateDir}/sim.log`;
    const stats = async (ns: string): Promise<{ p50: number; p99: number; n: number }> => {
      const times = await cniTimes(log, ns);
      return { p50: percentile(times, 50), p99: percentile(times, 99), n: times.length };
    };
    const cniAddMs = { excluded: await stats('kube-system'), unlabeled: await stats('plain'), enrolled: await stats('meshed') };
    return { pods, enrollSeconds, cniAddMs, resync, pluginStartMs, agentRssIdleMiB, agentRssEnrolledMiB, afterGc: { idle: idleAfterGc, enrolled: enrolledAfterGc }, enrolledOnNode, phasesMs, podNftMs };
  } finally {
    await execa(process.execPath, [WARREN, 'sim', 'down', '--state-dir', stateDir], { reject: false });
    await rm(stateDir, { recursive: true, force: true });
  }
}
