import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

const WARREN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface EnrollmentBenchResult {
  pods: number;
  enrollSeconds: number;
  cniAddMs: Record<'excluded' | 'unlabeled' | 'enrolled', { p50: number; p99: number; n: number }>;
  agentRssIdleMiB: number;
  agentRssEnrolledMiB: number;
  enrolledOnNode: number;
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

async function agentPid(node: string): Promise<number> {
  const out = (await execa('pgrep', ['-f', `main.js node .*--node-name ${node}( |$)`])).stdout.trim().split('\n')[0];
  return Number(out);
}

/** CNI ADD times the kubelet logged for pods of `namespace`. */
async function cniTimes(logPath: string, namespace: string): Promise<number[]> {
  return (await readFile(logPath, 'utf8'))
    .split('\n')
    .filter((l) => l.includes('"pod sandbox ready"') && l.includes(`"pod":"${namespace}/`))
    .map((l) => (JSON.parse(l) as { cniAddMs: number }).cniAddMs);
}

/**
 * Label a namespace of 100 running pods on one node and time until all
 * are annotated enabled; then 50 pod creations, one after the other, in each
 * of three namespaces for CNI ADD latency: excluded (the plugin answers without the agent),
 * unlabeled (the agent is asked and declines) and enrolled (the agent
 * programs rules and listeners before answering); agent RSS before and after.
 */
export async function benchEnrollment(pods = 100, creations = 50): Promise<EnrollmentBenchResult> {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-bench-enroll-`);
  const run = (...args: string[]) => execa(process.execPath, [WARREN, ...args], { timeout: 300_000 });
  try {
    // One node, so one agent holds all the pods (a /24 of pod IPs: 100 + 3 × 50 fit).
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
    const agent1 = await agentPid('node-1');
    const agentRssIdleMiB = rssMiB(agent1);

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
    const enrolledOnNode = (await core.listNamespacedPod({ namespace: 'fleet', fieldSelector: 'spec.nodeName=node-1' })).items.length;

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
    return { pods, enrollSeconds, cniAddMs, agentRssIdleMiB, agentRssEnrolledMiB, enrolledOnNode };
  } finally {
    await execa(process.execPath, [WARREN, 'sim', 'down', '--state-dir', stateDir], { reject: false });
    await rm(stateDir, { recursive: true, force: true });
  }
}
