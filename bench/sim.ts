import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { CoreV1Api, KubeConfig, makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { kubeconfig } from '../src/sim/apiserver/kubeconfig.js';

const WARREN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CHILD = fileURLToPath(new URL('./apiserver-child.js', import.meta.url));

export interface SimBenchResult {
  upSeconds: number;
  podsReadySeconds: number;
  pods: number;
  downSeconds: number;
  clientNodeWritesPerSecond: number;
  writesPerSecond: number;
  eventsPerSecond: number;
  informers: number;
  objects: number;
  rssEmptyMiB: number;
  rss1000PodsMiB: number;
}

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return kb / 1024;
}

interface ApiInfo {
  port: number;
  token: string;
  ca: string;
}

/** Creates ConfigMaps over one keep-alive HTTPS agent: the server's own write rate, without client-node's per-request TLS handshakes. */
async function rawCreates(info: ApiInfo, prefix: string, count: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, ca: info.ca, maxSockets: 16 });
  const post = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: info.port, method: 'POST', path: '/api/v1/namespaces/default/configmaps', agent, headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`create answered ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ metadata: { name: `${prefix}-${i}` }, data: { i: String(i) } }));
    });
  const t0 = performance.now();
  await pool(count, 16, post);
  agent.destroy();
  return count / ((performance.now() - t0) / 1000);
}

async function withApiServer<T>(fn: (kc: KubeConfig, pid: number, info: ApiInfo) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(`${tmpdir()}/warren-bench-api-`);
  const child = execa(process.execPath, [CHILD, dir], { buffer: false, cleanup: true, reject: false });
  try {
    const info = await new Promise<ApiInfo>((resolve, reject) => {
      let seen = '';
      child.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        const line = seen.split('\n').find((l) => l.includes('"ready"'));
        if (line) resolve(JSON.parse(line));
      });
      void child.then(() => reject(new Error('the API server child exited early')));
    });
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfig(`https://127.0.0.1:${info.port}`, info.ca, info.token));
    return await fn(kc, child.pid!, info);
  } finally {
    child.kill('SIGTERM');
    await child;
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `count` async tasks, `width` at a time. */
async function pool(count: number, width: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < count) await task(next++);
  }));
}

async function informerThroughput(informers: number, objects: number): Promise<{ clientNodeWritesPerSecond: number; writesPerSecond: number; eventsPerSecond: number }> {
  return withApiServer(async (kc, _pid, info) => {
    const core = kc.makeApiClient(CoreV1Api);
    const c0 = performance.now();
    await pool(200, 16, (i) => core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `warm-${i}` } } }));
    const clientNodeWritesPerSecond = 200 / ((performance.now() - c0) / 1000);
    let delivered = 0;
    const counted = (name: string | undefined): boolean => name?.startsWith('cm-') === true;
    const started: Array<ReturnType<typeof makeInformer<V1ConfigMap>>> = [];
    for (let i = 0; i < informers; i++) {
      const inf = makeInformer<V1ConfigMap>(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
      inf.on('add', (o) => {
        if (counted(o.metadata?.name)) delivered++;
      });
      await inf.start();
      started.push(inf);
    }
    const t0 = performance.now();
    const writesPerSecond = await rawCreates(info, 'cm', objects);
    const deadline = Date.now() + 120_000;
    while (delivered < informers * objects && Date.now() < deadline) await sleep(5);
    const allSeen = performance.now();
    for (const inf of started) await inf.stop();
    return { clientNodeWritesPerSecond, writesPerSecond, eventsPerSecond: delivered / ((allSeen - t0) / 1000) };
  });
}

async function apiServerRss(pods: number): Promise<{ rssEmptyMiB: number; rss1000PodsMiB: number }> {
  return withApiServer(async (kc, pid) => {
    await sleep(500);
    const rssEmptyMiB = rssMiB(pid);
    const core = kc.makeApiClient(CoreV1Api);
    await pool(pods, 16, (i) =>
      core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name: `pod-${i}`, labels: { app: `app-${i % 20}`, 'pod-template-hash': 'abcdef1234' } },
          spec: { nodeName: `node-${(i % 2) + 1}`, containers: [{ name: 'app', image: 'docker.io/istio/examples-bookinfo-reviews-v1:1.20', ports: [{ containerPort: 9080 }] }] },
        },
      }),
    );
    (globalThis as { gc?: () => void }).gc?.();
    await sleep(1000);
    return { rssEmptyMiB, rss1000PodsMiB: rssMiB(pid) };
  });
}

async function upAndPods(pods: number): Promise<{ upSeconds: number; podsReadySeconds: number; downSeconds: number }> {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-bench-sim-`);
  const run = (...args: string[]) => execa(process.execPath, [WARREN, ...args], { timeout: 300_000 });
  try {
    const t0 = performance.now();
    await run('sim', 'up', '--nodes', '2', '--state-dir', stateDir, '--api-port', '16643');
    const upSeconds = (performance.now() - t0) / 1000;
    const manifest = `${stateDir}/bench.yaml`;
    await writeFile(
      manifest,
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: load, namespace: default}\nspec:\n  replicas: ${pods}\n  selector: {matchLabels: {app: load}}\n  template:\n    metadata: {labels: {app: load}}\n    spec:\n      containers: [{name: app, image: sleep}]\n`,
    );
    const t1 = performance.now();
    await run('sim', 'apply', '-f', manifest, '--state-dir', stateDir);
    const kc = new KubeConfig();
    kc.loadFromFile(`${stateDir}/kubeconfig`);
    const core = kc.makeApiClient(CoreV1Api);
    const deadline = Date.now() + 300_000;
    for (;;) {
      const list = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=load' })).items;
      if (list.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === pods) break;
      if (Date.now() > deadline) throw new Error('pods did not become ready in 300 s');
      await sleep(100);
    }
    const podsReadySeconds = (performance.now() - t1) / 1000;
    const t2 = performance.now();
    await run('sim', 'down', '--state-dir', stateDir);
    return { upSeconds, podsReadySeconds, downSeconds: (performance.now() - t2) / 1000 };
  } finally {
    await execa(process.execPath, [WARREN, 'sim', 'down', '--state-dir', stateDir], { reject: false });
    await rm(stateDir, { recursive: true, force: true });
  }
}

export async function benchSim(): Promise<SimBenchResult> {
  const informers = 10;
  const objects = 2000;
  const pods = 40;
  const cluster = await upAndPods(pods);
  const throughput = await informerThroughput(informers, objects);
  const rss = await apiServerRss(1000);
  return { ...cluster, pods, ...throughput, informers, objects, ...rss };
}
