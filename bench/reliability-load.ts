import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { CoreV1Api } from '@kubernetes/client-node';
import { httpGetInNetns } from '../src/net/netns-http.js';
import { planTopology } from '../src/sim/topology/plan.js';
import { eventually } from '../test/helpers/apiserver.js';
import { GC_EXPOSED, simClusterWith, type TestDataplane } from '../test/helpers/sim-cluster.js';
import { netnsOf, readyAndEnrolled } from '../test/helpers/sim-pods.js';
import { warren } from '../test/helpers/warren-cli.js';

/**
 * Scenarios 6 (load) and 7 (soak) of the README's Reliability table, bench-only: a simulated
 * two-node cluster, `client` on node-1 and a tcp-echo `server` on node-2 in an ambient
 * namespace, the load made by bench/tcp-load.ts inside the client pod's netns (its own
 * process, so it does not share an event loop with what it measures).
 */
const LOAD = new URL('./tcp-load.js', import.meta.url).pathname;
const NS = 'rely-load';
const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: {name: ${NS}, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${NS}}
spec:
  nodeName: node-1
  containers: [{name: c, image: sleep}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ${NS}}
spec:
  nodeName: node-2
  containers:
  - name: echo
    image: tcp-echo
    ports: [{containerPort: 9000}]
    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}`;

const positive = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: a positive number, got ${JSON.stringify(raw)}`);
  return n;
};

/** A warren process of the cluster: its name (`node-1`, `node-2`, `ca`) and pid. */
interface WarrenProcess {
  name: string;
  pid: number;
}

async function warrenProcesses(stateDir: string): Promise<WarrenProcess[]> {
  const out = (await execa('pgrep', ['-af', `kubeconfig ${stateDir}/`], { reject: false })).stdout;
  return out
    .split('\n')
    .filter((l) => /main\.js (node|ca) /.test(l))
    .map((l) => {
      const pid = Number(l.split(' ')[0]);
      const node = / --node-name (\S+)/.exec(l)?.[1];
      return { name: node ?? 'ca', pid };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

interface Sample {
  rssKiB: number;
  fds: number;
  /** user + system CPU seconds so far */
  cpuSeconds: number;
}

let clockTicks = 100;
async function sample(pid: number): Promise<Sample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  // fields 14 and 15 of /proc/pid/stat (utime, stime), counted from after the command name
  const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / clockTicks;
  return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]), fds: (await readdir(`/proc/${pid}/fd`)).length, cpuSeconds };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/** tcp-load in the client pod's netns, its descriptor limit raised for the held connections. */
function loadIn(netns: string, args: string[], nofile: number) {
  return execa('prlimit', [`--nofile=${nofile}:${nofile}`, 'ip', 'netns', 'exec', netns, process.execPath, LOAD, ...args], { reject: false, timeout: 3 * 3_600_000 });
}

type LoadProcess = ReturnType<typeof loadIn>;

async function firstLine(child: LoadProcess, timeoutMs: number): Promise<string> {
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no output within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(text.slice(0, nl));
      }
    });
    void child.then((r) => {
      clearTimeout(timer);
      reject(new Error(`tcp-load exited (${r.exitCode}) before its first line: ${String(r.stderr)}`));
    });
  });
}

export interface LoadSoakResult {
  dataplane: string;
  load?: Record<string, unknown>;
  soak?: Record<string, unknown>;
  /** what held: the scenario's 0-error goals */
  held: { load?: boolean; soak?: boolean };
}

/**
 * Scenario 6: LOAD_CONNECTIONS (10 000) tunneled connections opened and held, then
 * LOAD_RATE (1 000) new connections a second for LOAD_SECONDS (60) beside them; the agents'
 * RSS and CPU per connection. Scenario 7: SOAK_MINUTES (30) of mixed traffic (100 held
 * connections, a request/response stream, 50 new connections a second), every warren
 * process sampled each 10 s (the agents after a full GC) for the slope of its RSS and descriptors. RELIABILITY_PARTS
 * picks `load`, `soak` or both.
 */
export async function benchLoadAndSoak(parts: Set<string>): Promise<LoadSoakResult> {
  clockTicks = Number((await execa('getconf', ['CLK_TCK'])).stdout) || 100;
  const dataplane = (process.env.RELIABILITY_DATAPLANE ?? 'native') as TestDataplane;
  const held = positive('LOAD_CONNECTIONS', 10_000);
  const rate = positive('LOAD_RATE', 1000);
  const rateSeconds = positive('LOAD_SECONDS', 60);
  const soakMinutes = positive('SOAK_MINUTES', 30);
  const nofile = held + 4096;
  const stateDir = await mkdtemp(`${tmpdir()}/warren-rely-load-`);
  const result: LoadSoakResult = { dataplane, held: {} };
  const children: LoadProcess[] = [];
  try {
    const kc = await simClusterWith(stateDir, 16592, MANIFEST, dataplane, GC_EXPOSED);
    const core = kc.makeApiClient(CoreV1Api);
    await eventually(async () => (await core.listNamespacedPod({ namespace: NS })).items.every(readyAndEnrolled), 'client and server Ready and enrolled', 120_000);
    const byName = new Map((await core.listNamespacedPod({ namespace: NS })).items.map((p) => [p.metadata!.name!, p]));
    const client = netnsOf(byName.get('client')!);
    const serverIp = byName.get('server')!.status!.podIP!;
    const procs = await warrenProcesses(stateDir);
    const agents = procs.filter((p) => p.name !== 'ca');
    const snapshot = async (): Promise<Record<string, Sample>> => Object.fromEntries(await Promise.all(procs.map(async (p) => [p.name, await sample(p.pid)] as const)));
    /**
     * A full GC in every agent; what each one's JS heap and C heap hold after it, KiB (the leak
     * signals that RSS blurs: RSS also carries free pages the allocators keep).
     */
    const gc = async (): Promise<Record<string, { heap: number; cHeapInUse: number }>> => {
      const held: Record<string, { heap: number; cHeapInUse: number }> = {};
      for (const node of planTopology(stateDir, ['node-1', 'node-2']).nodes) {
        const answer = await httpGetInNetns({ netns: node.netns, host: '127.0.0.1', port: 15000, path: '/memory?gc=1' });
        const memory = JSON.parse(answer.body.toString()) as { collected: boolean; heapUsed: number; cHeap: { inUseBytes: number } };
        if (!memory.collected) throw new Error(`${node.name}'s agent did not run a full GC before its memory was read: not started with --expose-gc?`);
        held[node.name] = { heap: Math.round(memory.heapUsed / 1024), cHeapInUse: Math.round(memory.cHeap.inUseBytes / 1024) };
      }
      return held;
    };

    if (parts.has('load')) {
      await gc();
      const before = await snapshot();
      const holder = loadIn(client, ['hold', serverIp, '9000', String(held), '200'], nofile);
      children.push(holder);
      const opened = JSON.parse(await firstLine(holder, 600_000)) as { opened: number; failed: number; seconds: number; lastError?: string };
      await sleep(2000);
      await gc();
      const holding = await snapshot();
      const burst = JSON.parse((await loadIn(client, ['rate', serverIp, '9000', String(rate), String(rateSeconds)], 8192)).stdout.trim()) as {
        attempted: number;
        ok: number;
        errors: number;
        skipped: number;
        perSecond: number;
        p50Ms: number;
        p99Ms: number;
      };
      const after = await snapshot();
      holder.kill('SIGTERM');
      const holdEnd = await holder;
      const dropped = /(\d+) held connections were closed/.exec(String(holdEnd.stderr))?.[1];
      const perAgent = Object.fromEntries(
        agents.map((a) => [
          a.name,
          {
            rssMiB: { before: +(before[a.name]!.rssKiB / 1024).toFixed(1), holding: +(holding[a.name]!.rssKiB / 1024).toFixed(1), afterRate: +(after[a.name]!.rssKiB / 1024).toFixed(1) },
            rssKiBPerHeldConnection: +((holding[a.name]!.rssKiB - before[a.name]!.rssKiB) / Math.max(1, opened.opened)).toFixed(2),
            cpuSecondsToOpenHeld: +(holding[a.name]!.cpuSeconds - before[a.name]!.cpuSeconds).toFixed(2),
            cpuMsPerNewConnection: +(((after[a.name]!.cpuSeconds - holding[a.name]!.cpuSeconds) * 1000) / Math.max(1, burst.ok)).toFixed(3),
            fds: { before: before[a.name]!.fds, holding: holding[a.name]!.fds },
          },
        ]),
      );
      result.load = { held: { wanted: held, ...opened }, heldDroppedDuringRate: Number(dropped ?? 0), rate: { wanted: rate, seconds: rateSeconds, ...burst }, agents: perAgent };
      result.held.load = opened.failed === 0 && opened.opened === held && burst.errors === 0 && burst.skipped === 0 && Number(dropped ?? 0) === 0;
    }

    if (parts.has('soak')) {
      const soakMs = soakMinutes * 60_000;
      const holder = loadIn(client, ['hold', serverIp, '9000', '100', '20'], 4096);
      children.push(holder);
      const opened = JSON.parse(await firstLine(holder, 120_000)) as { opened: number; failed: number };
      const rr = loadIn(client, ['rr', serverIp, '9000', '200', String(Math.round((soakMs / 1000) * 200)), '512'], 4096);
      const fresh = loadIn(client, ['rate', serverIp, '9000', '50', String(soakMs / 1000)], 4096);
      children.push(rr, fresh);
      const t0 = Date.now();
      type Soaked = { minute: number; heldKiB: Record<string, { heap: number; cHeapInUse: number }> } & Record<string, Sample>;
      const samples: Soaked[] = [];
      while (Date.now() - t0 < soakMs) {
        await sleep(10_000);
        // after a full collection, so the slope is of what stays live, not of garbage awaiting a GC
        const heldKiB = await gc();
        samples.push({ minute: (Date.now() - t0) / 60_000, heldKiB, ...(await snapshot()) } as Soaked);
      }
      const [rrEnd, freshEnd] = await Promise.all([rr, fresh]);
      holder.kill('SIGTERM');
      const holdEnd = await holder;
      const rrStats = JSON.parse(String(rrEnd.stdout).trim() || '{}') as Record<string, unknown>;
      const freshStats = JSON.parse(String(freshEnd.stdout).trim() || '{}') as { ok?: number; errors?: number; skipped?: number };
      const dropped = Number(/(\d+) held connections were closed/.exec(String(holdEnd.stderr))?.[1] ?? 0);
      // the first minute is warm-up (JIT, pools filling): the slope is of the rest
      const steady = samples.filter((s) => s.minute >= Math.min(1, soakMinutes / 4));
      const xs = steady.map((s) => s.minute);
      const slopes = Object.fromEntries(
        procs.map((p) => [
          p.name,
          {
            rssKiBPerMinute: +slope(xs, steady.map((s) => s[p.name]!.rssKiB)).toFixed(1),
            fdsPerMinute: +slope(xs, steady.map((s) => s[p.name]!.fds)).toFixed(3),
            rssMiB: { first: +(steady[0]![p.name]!.rssKiB / 1024).toFixed(1), last: +(steady.at(-1)![p.name]!.rssKiB / 1024).toFixed(1) },
            fds: { first: steady[0]![p.name]!.fds, last: steady.at(-1)![p.name]!.fds },
            ...(p.name === 'ca'
              ? {}
              : {
                  heapKiBPerMinute: +slope(xs, steady.map((s) => s.heldKiB[p.name]!.heap)).toFixed(1),
                  heapMiB: { first: +(steady[0]!.heldKiB[p.name]!.heap / 1024).toFixed(1), last: +(steady.at(-1)!.heldKiB[p.name]!.heap / 1024).toFixed(1) },
                  cHeapInUseKiBPerMinute: +slope(xs, steady.map((s) => s.heldKiB[p.name]!.cHeapInUse)).toFixed(1),
                  cHeapInUseMiB: { first: +(steady[0]!.heldKiB[p.name]!.cHeapInUse / 1024).toFixed(1), last: +(steady.at(-1)!.heldKiB[p.name]!.cHeapInUse / 1024).toFixed(1) },
                }),
          },
        ]),
      );
      result.soak = { minutes: soakMinutes, held: opened, heldDropped: dropped, requestResponse: rrStats, newConnections: freshStats, processes: slopes, samples: samples.length };
      result.held.soak = opened.failed === 0 && dropped === 0 && freshStats.errors === 0 && freshStats.skipped === 0 && rrEnd.exitCode === 0;
    }
    return result;
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await Promise.allSettled(children);
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    if (down.exitCode !== 0) console.error(`warren sim down failed: ${down.stdout}${down.stderr}`);
    await rm(stateDir, { recursive: true, force: true });
  }
}
