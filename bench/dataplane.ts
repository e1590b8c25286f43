/**
 * Data-plane benchmark (issue: `npm run bench -- dataplane`): pod A → pod B
 * over four paths on the same two-netns topology, with the same ECDSA P-256
 * certificates (made by src/identity), measured interleaved in one run:
 *   direct   A → B:port, no proxy (the floor)
 *   stunnel  A → 127.0.0.1 (stunnel client in A) → mutual TLS 1.3 → stunnel
 *            server in B → 127.0.0.1:port in B; client cert = A's identity,
 *            server cert = B's, the root as CAfile, verifyChain, P-256
 *   stunnel-captured  the same stunnel pair, but the app in A dials B:port as
 *            on warren's paths and a nat REDIRECT in A (bench/pod-rules.ts
 *            applyBenchCapture: warren's pod capture rule, narrowed to B:port)
 *            sends it to stunnel's client: what the capture costs stunnel
 *            (not the idle phase: the same processes as stunnel's row)
 *   node-tls the same as stunnel, built in Node (bench/node-tls-proxy.ts): one
 *            TLS connection per TCP connection, no HTTP/2; the ceiling of any
 *            data path on Node's TLS, measured so that warren's distance to
 *            stunnel can be split into Node's share and warren's
 *   warren   A → B:port captured by A's pod rules → A's PodProxy (its own
 *            process) → HBONE (HTTP/2 CONNECT over mutual TLS 1.3) → B's
 *            PodProxy (another process) → B:port from inside B with A's IP
 *            as source; the pod rules (nft + policy routing) are applied to A
 *            and B only while this path is measured, since they capture all
 *            of the pods' TCP
 *   native   as warren, with the proxies on the native data path
 *            (`--dataplane native`: the addon's worker threads move the bytes,
 *            TLS by Node's OpenSSL, HTTP/2 by Node's nghttp2)
 *   warren-nopool  warren with the HBONE pool off: a TLS connection per
 *            CONNECT stream, as stunnel and node-tls make per connection
 *   warren-real    warren as an agent is configured: AuthorizationPolicies
 *            loaded (bench/dataplane-proxy.ts benchPolicies; the traffic is
 *            allowed by an ALLOW rule) and every access log line written
 * Each round measures direct, stunnel, stunnel-captured, node-tls, warren, native, warren-nopool, warren-real in turn, the
 * order changed each round so that no path always follows the same one (rotated() below); each measure is the median over the rounds. The load (iperf3, bench/tcp-load.ts) runs in its
 * own processes in A; the servers (iperf3 -s, tcp-load server) in B. On the
 * direct path the idle connections weigh the tcp-load server itself (a Node
 * process holding one accepted socket per connection): what any Node proxy
 * pays per connection and side before it holds any state of its own.
 */
import { execa } from 'execa';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRootCa, loadCa, signWorkloadCert } from '../src/ca/signer.js';
import { PROXY_NODE_OPTIONS } from '../src/config/proxy-node-options.js';
import { checkCsr, createWorkloadKey } from '../src/identity/csr.js';
import type { SpiffeId } from '../src/identity/spiffe.js';
import { startChild, type Child } from './child.js';
import { createTopology, type TestPod } from '../test/helpers/netns.js';
import type { BenchPod, ProxyMode } from './dataplane-proxy.js';
import { applyBenchCapture, applyBenchPodRules, removeBenchCapture, removeBenchPodRules } from './pod-rules.js';

/** Chosen so that the whole run stays under ~10 minutes on 2 cores. */
export const DATAPLANE = {
  rounds: 3,
  /** iperf3 -t, after -O (omitted warm-up) seconds */
  iperfSeconds: 2,
  iperfOmitSeconds: 1,
  rrRate: 1000,
  rrRequests: 2000,
  /**
   * Requests through the path before each path's measures, unmeasured: a long-running agent
   * runs optimized code, and warren's proxies are started afresh for each round (below).
   */
  warmupRequests: 3000,
  rrBytes: 1024,
  connSeconds: 1,
  connConcurrency: 4,
  idleConnections: 10_000,
  idleConcurrency: 200,
  /**
   * The rounds that also hold the 10 000 idle connections: opening them is
   * CPU-bound at ~300/s through either proxy on 2 cores (a TLS handshake per
   * connection for stunnel, a peer-chain verification per stream for warren),
   * ~35 s per path, too long for every round within ~10 minutes. Not on warren-nopool: a
   * TLS connection per idle connection meets the HBONE server's per-peer bound (256) by design.
   */
  idleRounds: [1, 3],
  /** RLIMIT_NOFILE asked for every server, proxy and client; capped at the hard limit this process may grant */
  nofile: 65_536,
} as const;

/** 'before': another build's warren (DATAPLANE_COMPARE), measured in the same rounds right after 'warren' */
export type PathName = 'direct' | 'stunnel' | 'stunnel-captured' | 'node-tls' | 'warren' | 'native' | 'warren-nopool' | 'warren-real' | 'before';
export const PATHS: readonly PathName[] = ['direct', 'stunnel', 'stunnel-captured', 'node-tls', 'warren', 'native', 'warren-nopool', 'warren-real'];

/**
 * For profiling and trying changes (not for the reported numbers):
 * DATAPLANE_ROUNDS=n, DATAPLANE_PHASES=iperf,rr,connrate,idle (a subset),
 * DATAPLANE_PATHS=direct,stunnel,stunnel-captured,node-tls,warren,native,warren-nopool,warren-real (a subset; added latency needs direct),
 * DATAPLANE_PROXY_NODE_OPTIONS="--flag …" (node flags for warren's proxies instead of the agent's,
 * src/config/proxy-node-options.ts; "" for none),
 * DATAPLANE_COMPARE_NODE_OPTIONS="--flag …" (the node flags of path 'before' instead; with
 * DATAPLANE_COMPARE=this build's proxy, the same code with and without a flag in the same rounds),
 * DATAPLANE_PROXY=<path of another build's dist/bench/dataplane-proxy.js> instead of this one,
 * DATAPLANE_COMPARE=<such a path>: that build as path 'before' after 'warren' in every round
 * (with DATAPLANE_COMPARE_DATAPLANE=native, on its native data path),
 * DATAPLANE_RR_REQUESTS=n (requests per latency measure, instead of rrRequests),
 * DATAPLANE_PROXY_CPUS=0 (a taskset CPU list for warren's proxies; with
 * DATAPLANE_NATIVE_THREADS=n, the native path's worker threads: one core vs two).
 * Every run is saved (bench/main.ts): with DATAPLANE_ROUNDS and DATAPLANE_COMPARE
 * only, as the benchmark (`dataplane`, or `dataplane-<DATAPLANE_RESULT_NAME>`);
 * narrowed or altered by the others, as `dataplane-experiment[-<name>]`, its settings listed.
 */
const env = process.env;
const ROUNDS = Number(env['DATAPLANE_ROUNDS'] ?? DATAPLANE.rounds);
const PHASES = new Set((env['DATAPLANE_PHASES'] ?? 'iperf,rr,connrate,idle').split(','));
const ONLY_PATHS = new Set((env['DATAPLANE_PATHS'] ?? [...PATHS, 'before'].join(',')).split(','));
const nodeFlags = (value: string): string[] => value.split(' ').filter((f) => f !== '');
/** warren's proxies run with the agent's own Node flags (deploy/daemonset.yaml's NODE_OPTIONS) unless a knob says otherwise */
const PROXY_FLAGS = nodeFlags(env['DATAPLANE_PROXY_NODE_OPTIONS'] ?? PROXY_NODE_OPTIONS);
const COMPARE_FLAGS = nodeFlags(env['DATAPLANE_COMPARE_NODE_OPTIONS'] ?? env['DATAPLANE_PROXY_NODE_OPTIONS'] ?? PROXY_NODE_OPTIONS);
const PROXY_CPUS = env['DATAPLANE_PROXY_CPUS'];
/** more requests per latency measure steady its p99 (2 000 leave it to the 20 slowest) */
const RR_REQUESTS = Number(env['DATAPLANE_RR_REQUESTS'] ?? DATAPLANE.rrRequests);
if (!Number.isInteger(RR_REQUESTS) || RR_REQUESTS < 100) throw new Error(`DATAPLANE_RR_REQUESTS: an integer of at least 100, got ${env['DATAPLANE_RR_REQUESTS']}`);

/** The knobs that narrow or alter what is measured (more rounds and a compared build do not). */
const EXPERIMENT_KNOBS = ['DATAPLANE_PHASES', 'DATAPLANE_PATHS', 'DATAPLANE_RR_REQUESTS', 'DATAPLANE_PROXY_NODE_OPTIONS', 'DATAPLANE_COMPARE_NODE_OPTIONS', 'DATAPLANE_PROXY', 'DATAPLANE_PROXY_CPUS', 'DATAPLANE_NATIVE_THREADS'];
/** Every DATAPLANE_* setting of this run, `K=v`, for the saved result. */
export const dataplaneSettings = (): string[] =>
  Object.keys(env)
    .filter((k) => k.startsWith('DATAPLANE_'))
    .sort()
    .map((k) => `${k}=${env[k] ?? ''}`);
/** true when a knob above narrows or alters the run: saved as an experiment, not as the benchmark */
export const dataplaneExperiment = (): boolean => EXPERIMENT_KNOBS.some((k) => env[k] !== undefined);

export interface RoundMeasure {
  round: number;
  path: PathName;
  gbit1: number;
  gbit8: number;
  /** proxy processes' utime + stime per GB sent, iperf3 -P1 / -P8 (NaN for direct) */
  cpuSecondsPerGB1: number;
  cpuSecondsPerGB8: number;
  /** request/response latency timed from each request's scheduled send (bench/tcp-load.ts rr) */
  p50us: number;
  p99us: number;
  /** the same requests' round trips timed from their actual send: the path's own time, without the load generator's timer jitter */
  rttP50us: number;
  rttP99us: number;
  rrAchievedRate: number;
  /** requests sent more than one interval after their scheduled time */
  rrLate: number;
  /** the run could not keep the schedule (achieved < 95% of the rate, or > 1% late) */
  rrBehind: boolean;
  connPerSecond: number;
  connErrors: number;
  /** proxy processes' utime + stime over the rr run, per 1000 requests (NaN for direct) */
  cpuSecondsPer1000Requests: number;
  /** the same over the connrate run, per 1000 connections */
  cpuSecondsPer1000Connections: number;
  idleOpened: number;
  idleFailed: number;
  idleOpenSeconds: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  /** (after − before) / opened, KiB, of the proxies (direct: of the tcp-load server in B) */
  rssKiBPerIdleConnection: number;
  /** wall time of each measure in this round */
  phaseSeconds: Record<string, number>;
}

/** the medians over the rounds of one path */
export type PathSummary = Pick<
  RoundMeasure,
  'path' | 'gbit1' | 'gbit8' | 'cpuSecondsPerGB1' | 'cpuSecondsPerGB8' | 'p50us' | 'p99us' | 'rttP50us' | 'rttP99us' | 'connPerSecond' | 'cpuSecondsPer1000Requests' | 'cpuSecondsPer1000Connections' | 'rssKiBPerIdleConnection'
> & {
  /** median over rounds of (this path − direct in the same round) */
  addedP50us: number;
  addedP99us: number;
  /** the same for the round trips from the actual send */
  addedRttP50us: number;
  addedRttP99us: number;
  /** the lowest achieved request rate of the rounds, the most late requests, and how many rounds fell behind */
  rrAchievedRateMin: number;
  rrLateMax: number;
  rrRoundsBehind: number;
  rssMiBPer10kIdle: number;
  idleOpenedMin: number;
};

export interface DataplaneResult {
  config: Omit<typeof DATAPLANE, 'rounds' | 'rrRequests'> & { rounds: number; rrRequests: number; clockTicks: number; nofileGranted: number; stunnel: string; iperf3: string };
  rounds: RoundMeasure[];
  summary: PathSummary[];
  seconds: number;
}

const SERVER_PORT = 8080;
const IPERF_PORT = 5201;
interface PairPorts {
  load: { local: number; remote: number; target: number };
  iperf: { local: number; remote: number; target: number };
}
/** stunnel: client listens in A on 127.0.0.1:<local>, server in B on B:<remote> */
const STUNNEL: PairPorts = {
  load: { local: 18080, remote: 16080, target: SERVER_PORT },
  iperf: { local: 15201, remote: 16201, target: IPERF_PORT },
};
/** node-tls: the same shape as stunnel's */
const NODE_TLS: PairPorts = {
  load: { local: 28080, remote: 26080, target: SERVER_PORT },
  iperf: { local: 25201, remote: 26201, target: IPERF_PORT },
};
const LOAD = new URL('./tcp-load.js', import.meta.url).pathname;
const NODE_TLS_PROXY = new URL('./node-tls-proxy.js', import.meta.url).pathname;
const PROXY = env['DATAPLANE_PROXY'] ?? new URL('./dataplane-proxy.js', import.meta.url).pathname;

export function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** raised to DATAPLANE.nofile where the hard limit allows (without CAP_SYS_RESOURCE it cannot be raised) */
let nofile: number = DATAPLANE.nofile;
const prlimit = (file: string, args: string[]): [string, string[]] => ['prlimit', [`--nofile=${nofile}:${nofile}`, file, ...args]];
const inNetns = (pod: TestPod, file: string, args: string[]): [string, string[]] => prlimit('ip', ['netns', 'exec', pod.netns, file, ...args]);

async function listening(pod: TestPod, port: number, address?: string): Promise<boolean> {
  const filter = address === undefined ? `sport = :${port}` : `src ${address} and sport = :${port}`;
  const out = await execa('ip', ['netns', 'exec', pod.netns, 'ss', '-Hltn', filter], { reject: false });
  return out.stdout.trim() !== '';
}

async function established(pod: TestPod, filter: string): Promise<number> {
  const out = await execa('ip', ['netns', 'exec', pod.netns, 'ss', '-Htn', 'state', 'established', filter], { reject: false });
  return out.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

async function runJson<T>(file: string, args: string[], timeoutMs = 120_000): Promise<T> {
  const res = await execa(file, args, { timeout: timeoutMs, reject: false });
  if (res.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed (${res.exitCode}): ${String(res.stderr).slice(0, 500)} ${String(res.stdout).slice(0, 500)}`);
  return JSON.parse(String(res.stdout)) as T;
}

let clockTicks = 100;
/** utime + stime of a process (all its threads, the ones gone included), seconds */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clockTicks;
}
const cpuOf = (pids: number[]): number => pids.reduce((s, p) => s + cpuSeconds(p), 0);
function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}
const rssOf = (pids: number[]): number => pids.reduce((s, p) => s + rssKiB(p), 0);

interface Identity {
  pod: BenchPod;
  id: SpiffeId;
}

/** Root, and a key + leaf for each pod's identity, as PEM files (the same files for warren and stunnel). */
async function writeCerts(dir: string, pods: Identity[]): Promise<void> {
  const root = await createRootCa('cluster.local');
  const ca = await loadCa(root);
  writeFileSync(join(dir, 'root.pem'), root.certPem);
  for (const { pod, id } of pods) {
    const wk = await createWorkloadKey(id);
    const leaf = await signWorkloadCert(ca, await checkCsr(wk.csrPem, id), 24 * 3_600_000);
    new X509Certificate(leaf); // parses
    writeFileSync(join(dir, `${pod.name}.pem`), [leaf, ...ca.chainPem].map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''));
    writeFileSync(join(dir, `${pod.name}.key`), wk.privateKeyPem, { mode: 0o600 });
  }
  writeFileSync(join(dir, 'pods.json'), JSON.stringify(pods.map((p) => p.pod)));
}

function stunnelConfig(dir: string, side: 'client' | 'server', pod: string, services: string[]): string {
  return [
    'foreground = yes',
    'pid =',
    // errors only at level 2: at 3 every iperf3 stream end logs "TLS socket closed with unsent bytes"
    'debug = 2',
    'syslog = no',
    `cert = ${join(dir, `${pod}.pem`)}`,
    `key = ${join(dir, `${pod}.key`)}`,
    `CAfile = ${join(dir, 'root.pem')}`,
    'verifyChain = yes',
    ...(side === 'server' ? ['requireCert = yes'] : []),
    'sslVersionMin = TLSv1.3',
    'curves = prime256v1',
    'socket = l:TCP_NODELAY=1',
    'socket = r:TCP_NODELAY=1',
    ...services,
    '',
  ].join('\n');
}

interface PathRig {
  name: PathName;
  /** where the load client in A connects */
  host: string;
  port: number;
  iperfHost: string;
  iperfPort: number;
  /** the proxy processes whose CPU and RSS are counted */
  pids: number[];
  /** the processes whose RSS the idle connections are weighed by (the proxies; direct: the server in B) */
  rssPids: number[];
  /** Node processes: SIGUSR2 = full GC before RSS readings */
  gcPids: number[];
  enter(): Promise<void>;
  leave(): Promise<void>;
}

interface Iperf {
  intervals: { sum: { bytes: number } }[];
  end: { sum_received: { bits_per_second: number } };
}
interface Rr {
  requests: number;
  achievedRate: number;
  late: number;
  behind: boolean;
  p50us: number;
  p99us: number;
  sendP50us: number;
  sendP99us: number;
}
interface ConnRate {
  connections: number;
  errors: number;
  perSecond: number;
}
interface Hold {
  opened: number;
  failed: number;
  seconds: number;
  lastError?: string;
}

/** Gbit/s received (omitted warm-up excluded) and the proxies' CPU-seconds per GB sent over the whole run (warm-up included) */
async function iperf(a: TestPod, rig: PathRig, streams: number): Promise<{ gbit: number; cpuSecondsPerGB: number }> {
  const args = ['-c', rig.iperfHost, '-p', String(rig.iperfPort), '-J', '-t', String(DATAPLANE.iperfSeconds), '-O', String(DATAPLANE.iperfOmitSeconds), '-P', String(streams)];
  try {
    const cpu0 = cpuOf(rig.pids);
    const r = await runJson<Iperf>(...inNetns(a, 'iperf3', args), 60_000);
    const cpu = cpuOf(rig.pids) - cpu0;
    const bytes = r.intervals.reduce((n, i) => n + i.sum.bytes, 0);
    return { gbit: r.end.sum_received.bits_per_second / 1e9, cpuSecondsPerGB: rig.pids.length === 0 ? NaN : cpu / (bytes / 1e9) };
  } catch (err) {
    console.error(`iperf3 -P${streams} to ${rig.iperfHost}:${rig.iperfPort}: ${(err as Error).message}`);
    return { gbit: NaN, cpuSecondsPerGB: NaN };
  }
}

/** Opens the idle connections, reads the proxies' RSS before and while they are held, then lets them go. */
async function idle(a: TestPod, b: TestPod, rig: PathRig): Promise<Pick<RoundMeasure, 'idleOpened' | 'idleFailed' | 'idleOpenSeconds' | 'rssBeforeKiB' | 'rssAfterKiB' | 'rssKiBPerIdleConnection'>> {
  const settle = async (): Promise<void> => {
    for (const pid of rig.gcPids) process.kill(pid, 'SIGUSR2');
    await sleep(500);
  };
  await settle();
  const before = rssOf(rig.rssPids);
  const [file, args] = inNetns(a, process.execPath, [LOAD, 'hold', rig.host, String(rig.port), String(DATAPLANE.idleConnections), String(DATAPLANE.idleConcurrency)]);
  const proc = execa(file, args, { reject: false, cleanup: true, buffer: false, stdin: 'ignore', stderr: 'inherit' });
  let held: Hold | undefined;
  try {
    held = await new Promise<Hold>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('hold: no answer within 300 s')), 300_000);
      let seen = '';
      proc.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        const nl = seen.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(JSON.parse(seen.slice(0, nl)) as Hold);
        }
      });
      void proc.then((r) => {
        clearTimeout(timer);
        reject(new Error(`hold exited (${r.exitCode}) early`));
      });
    });
    if (held.failed > 0) console.error(`${rig.name}: ${held.failed} of ${DATAPLANE.idleConnections} idle connections failed (${held.lastError ?? ''})`);
    await sleep(1000);
    await settle();
    const after = rssOf(rig.rssPids);
    return {
      idleOpened: held.opened,
      idleFailed: held.failed,
      idleOpenSeconds: held.seconds,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      rssKiBPerIdleConnection: held.opened === 0 ? NaN : (after - before) / held.opened,
    };
  } finally {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await proc;
    clearTimeout(timer);
    // Every connection through the path has to be gone before the next measure (and before warren's rules go).
    const deadline = Date.now() + 20_000;
    while ((await established(b, `sport = :${SERVER_PORT}`)) > 0 && Date.now() < deadline) await sleep(100);
    const left = await established(b, `sport = :${SERVER_PORT}`);
    if (left > 0) console.error(`${rig.name}: ${left} connections to the server still open 20 s after the idle run`);
    // Closing 10 000 connections keeps a proxy busy for a while (TLS shutdowns, GC): the next
    // path must not be measured while this one still takes CPU.
    const quietBy = Date.now() + 30_000;
    for (let cpu = cpuOf(rig.pids); Date.now() < quietBy; ) {
      await sleep(500);
      const now = cpuOf(rig.pids);
      if (now - cpu < 0.025) break;
      cpu = now;
    }
  }
}

async function measure(round: number, a: TestPod, b: TestPod, rig: PathRig): Promise<RoundMeasure> {
  const phase: Record<string, number> = {};
  let t = Date.now();
  const lap = (name: string): void => {
    phase[name] = (Date.now() - t) / 1000;
    t = Date.now();
  };
  const skipped = { gbit: NaN, cpuSecondsPerGB: NaN };
  await runJson<Rr>(...inNetns(a, process.execPath, [LOAD, 'rr', rig.host, String(rig.port), String(DATAPLANE.rrRate * 3), String(DATAPLANE.warmupRequests), String(DATAPLANE.rrBytes)]));
  lap('warmup');
  const p1 = PHASES.has('iperf') ? await iperf(a, rig, 1) : skipped;
  const p8 = PHASES.has('iperf') ? await iperf(a, rig, 8) : skipped;
  lap('iperf');
  const hasProxies = rig.pids.length > 0;

  let cpu0 = cpuOf(rig.pids);
  const rr = PHASES.has('rr')
    ? await runJson<Rr>(...inNetns(a, process.execPath, [LOAD, 'rr', rig.host, String(rig.port), String(DATAPLANE.rrRate), String(RR_REQUESTS), String(DATAPLANE.rrBytes)]))
    : { requests: 0, achievedRate: NaN, late: 0, behind: false, p50us: NaN, p99us: NaN, sendP50us: NaN, sendP99us: NaN };
  const rrCpu = cpuOf(rig.pids) - cpu0;
  lap('rr');

  cpu0 = cpuOf(rig.pids);
  const conn = PHASES.has('connrate')
    ? await runJson<ConnRate>(...inNetns(a, process.execPath, [LOAD, 'connrate', rig.host, String(rig.port), String(DATAPLANE.connSeconds), String(DATAPLANE.connConcurrency), String(DATAPLANE.rrBytes)]))
    : { connections: 0, errors: 0, perSecond: NaN };
  const connCpu = cpuOf(rig.pids) - cpu0;
  if (conn.errors > 0) console.error(`${rig.name}: ${conn.errors} connections failed in the connection-rate run`);
  lap('connrate');

  const held = rig.rssPids.length > 0 && PHASES.has('idle') && (DATAPLANE.idleRounds as readonly number[]).includes(round)
    ? await idle(a, b, rig)
    : { idleOpened: 0, idleFailed: 0, idleOpenSeconds: NaN, rssBeforeKiB: NaN, rssAfterKiB: NaN, rssKiBPerIdleConnection: NaN };
  lap('idle');
  return {
    phaseSeconds: phase,
    round,
    path: rig.name,
    gbit1: p1.gbit,
    gbit8: p8.gbit,
    cpuSecondsPerGB1: p1.cpuSecondsPerGB,
    cpuSecondsPerGB8: p8.cpuSecondsPerGB,
    p50us: rr.p50us,
    p99us: rr.p99us,
    rttP50us: rr.sendP50us,
    rttP99us: rr.sendP99us,
    rrAchievedRate: rr.achievedRate,
    rrLate: rr.late,
    rrBehind: rr.behind,
    connPerSecond: conn.perSecond,
    connErrors: conn.errors,
    cpuSecondsPer1000Requests: hasProxies ? (rrCpu * 1000) / rr.requests : NaN,
    cpuSecondsPer1000Connections: hasProxies && conn.connections > 0 ? (connCpu * 1000) / conn.connections : NaN,
    ...held,
  };
}

function summarize(rounds: RoundMeasure[]): PathSummary[] {
  return [...PATHS, ...(rounds.some((r) => r.path === 'before') ? (['before'] as const) : [])].map((path) => {
    const mine = rounds.filter((r) => r.path === path);
    const added = (key: 'p50us' | 'p99us' | 'rttP50us' | 'rttP99us'): number =>
      median(mine.map((r) => r[key] - (rounds.find((d) => d.round === r.round && d.path === 'direct')?.[key] ?? NaN)));
    const perConn = median(mine.map((r) => r.rssKiBPerIdleConnection));
    return {
      path,
      gbit1: median(mine.map((r) => r.gbit1)),
      gbit8: median(mine.map((r) => r.gbit8)),
      cpuSecondsPerGB1: median(mine.map((r) => r.cpuSecondsPerGB1)),
      cpuSecondsPerGB8: median(mine.map((r) => r.cpuSecondsPerGB8)),
      p50us: median(mine.map((r) => r.p50us)),
      p99us: median(mine.map((r) => r.p99us)),
      addedP50us: added('p50us'),
      addedP99us: added('p99us'),
      rttP50us: median(mine.map((r) => r.rttP50us)),
      rttP99us: median(mine.map((r) => r.rttP99us)),
      addedRttP50us: added('rttP50us'),
      addedRttP99us: added('rttP99us'),
      rrAchievedRateMin: Math.min(...mine.map((r) => r.rrAchievedRate)),
      rrLateMax: Math.max(...mine.map((r) => r.rrLate)),
      rrRoundsBehind: mine.filter((r) => r.rrBehind).length,
      connPerSecond: median(mine.map((r) => r.connPerSecond)),
      cpuSecondsPer1000Requests: median(mine.map((r) => r.cpuSecondsPer1000Requests)),
      cpuSecondsPer1000Connections: median(mine.map((r) => r.cpuSecondsPer1000Connections)),
      rssKiBPerIdleConnection: perConn,
      rssMiBPer10kIdle: (perConn * 10_000) / 1024,
      idleOpenedMin: Math.min(...mine.filter((r) => r.idleOpened > 0).map((r) => r.idleOpened)),
    };
  });
}

export async function benchDataplane(): Promise<DataplaneResult> {
  const started = Date.now();
  clockTicks = Number((await execa('getconf', ['CLK_TCK'])).stdout) || 100;
  const hard = (await execa('sh', ['-c', 'ulimit -Hn'])).stdout.trim();
  const canRaise = (await execa('prlimit', [`--nofile=${DATAPLANE.nofile}:${DATAPLANE.nofile}`, 'true'], { reject: false })).exitCode === 0;
  nofile = canRaise || hard === 'unlimited' ? DATAPLANE.nofile : Math.min(DATAPLANE.nofile, Number(hard));
  if (nofile < DATAPLANE.nofile) console.error(`RLIMIT_NOFILE cannot go above ${nofile} here (no CAP_SYS_RESOURCE): stunnel and node-tls, with two descriptors per connection, hold fewer than ${DATAPLANE.idleConnections}`);
  const versions = {
    stunnel: ((await execa('stunnel', ['-version'], { reject: false })).stderr.match(/stunnel \S+/) ?? ['stunnel ?'])[0],
    iperf3: ((await execa('iperf3', ['--version'], { reject: false })).stdout.match(/iperf \S+/) ?? ['iperf3 ?'])[0],
  };
  const topo = await createTopology(2);
  const [a, b] = topo.pods as [TestPod, TestPod];
  const dir = mkdtempSync(join(tmpdir(), 'warren-dataplane-'));
  const procs: Child[] = [];
  let rulesOn = false;
  const rules = {
    async on() {
      rulesOn = true;
      await applyBenchPodRules(a);
      await applyBenchPodRules(b);
    },
    async off() {
      await removeBenchPodRules(a);
      await removeBenchPodRules(b);
      rulesOn = false;
    },
  };
  try {
    // Many short connections per round: a wider port range and TIME_WAIT reuse keep the
    // connection-rate and idle runs of later rounds from running out of ports.
    for (const p of [a, b]) {
      await execa('ip', ['netns', 'exec', p.netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=20000 65000', 'net.ipv4.tcp_tw_reuse=1']);
    }
    const podA: Identity = { pod: { name: 'a', serviceAccount: 'client', ips: [a.ipv4, a.ipv6] }, id: { trustDomain: 'cluster.local', namespace: 'bench', serviceAccount: 'client' } };
    const podB: Identity = { pod: { name: 'b', serviceAccount: 'server', ips: [b.ipv4, b.ipv6] }, id: { trustDomain: 'cluster.local', namespace: 'bench', serviceAccount: 'server' } };
    await writeCerts(dir, [podA, podB]);

    const loadServer = await startChild(...inNetns(b, process.execPath, ['--expose-gc', LOAD, 'server', String(SERVER_PORT)]));
    procs.push(loadServer);
    procs.push(await startChild(...inNetns(b, 'iperf3', ['-s', '-p', String(IPERF_PORT)]), () => listening(b, IPERF_PORT)));

    const service = (name: string, accept: string, connect: string, client: boolean): string[] => [`[${name}]`, ...(client ? ['client = yes'] : []), `accept = ${accept}`, `connect = ${connect}`];
    writeFileSync(
      join(dir, 'stunnel-client.conf'),
      stunnelConfig(dir, 'client', 'a', [
        ...service('load', `127.0.0.1:${STUNNEL.load.local}`, `${b.ipv4}:${STUNNEL.load.remote}`, true),
        ...service('iperf', `127.0.0.1:${STUNNEL.iperf.local}`, `${b.ipv4}:${STUNNEL.iperf.remote}`, true),
      ]),
    );
    writeFileSync(
      join(dir, 'stunnel-server.conf'),
      stunnelConfig(dir, 'server', 'b', [
        ...service('load', `${b.ipv4}:${STUNNEL.load.remote}`, `127.0.0.1:${STUNNEL.load.target}`, false),
        ...service('iperf', `${b.ipv4}:${STUNNEL.iperf.remote}`, `127.0.0.1:${STUNNEL.iperf.target}`, false),
      ]),
    );
    const stunnelServer = await startChild(...inNetns(b, 'stunnel', [join(dir, 'stunnel-server.conf')]), async () => (await listening(b, STUNNEL.load.remote)) && (await listening(b, STUNNEL.iperf.remote)));
    procs.push(stunnelServer);
    const stunnelClient = await startChild(...inNetns(a, 'stunnel', [join(dir, 'stunnel-client.conf')]), async () => (await listening(a, STUNNEL.load.local)) && (await listening(a, STUNNEL.iperf.local)));
    procs.push(stunnelClient);

    // Two agents' worth of warren: A's proxy (outbound) and B's (HBONE inbound), each its own process.
    const pinned = ([file, args]: [string, string[]]): [string, string[]] => (PROXY_CPUS === undefined ? [file, args] : ['taskset', ['-c', PROXY_CPUS, file, ...args]]);
    const startWarren = async (proxy: string, mode: ProxyMode, flags: string[]): Promise<Child[]> => {
      const pair = [
        await startChild(...pinned(prlimit(process.execPath, ['--expose-gc', ...flags, proxy, a.path, 'a', dir, mode]))),
        await startChild(...pinned(prlimit(process.execPath, ['--expose-gc', ...flags, proxy, b.path, 'b', dir, mode]))),
      ];
      for (const c of pair) {
        const comm = readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim();
        if (!comm.startsWith('node')) throw new Error(`pid ${c.pid} is ${comm}, expected node`);
      }
      return pair;
    };
    const nodeTls = (side: 'client' | 'server', pod: TestPod, forwards: string[]): Promise<Child> =>
      startChild(...inNetns(pod, process.execPath, ['--expose-gc', NODE_TLS_PROXY, side, dir, side === 'client' ? 'a' : 'b', ...forwards]));
    const nodeTlsServer = await nodeTls('server', b, [
      `${b.ipv4}:${NODE_TLS.load.remote}=127.0.0.1:${NODE_TLS.load.target}`,
      `${b.ipv4}:${NODE_TLS.iperf.remote}=127.0.0.1:${NODE_TLS.iperf.target}`,
    ]);
    procs.push(nodeTlsServer);
    const nodeTlsClient = await nodeTls('client', a, [
      `127.0.0.1:${NODE_TLS.load.local}=${b.ipv4}:${NODE_TLS.load.remote}`,
      `127.0.0.1:${NODE_TLS.iperf.local}=${b.ipv4}:${NODE_TLS.iperf.remote}`,
    ]);
    procs.push(nodeTlsClient);
    // The pids read for CPU and RSS must be the programs themselves (prlimit and `ip netns exec` exec into them).
    const programs = [
      [stunnelClient.pid, 'stunnel'],
      [stunnelServer.pid, 'stunnel'],
      [nodeTlsClient.pid, 'node'],
      [nodeTlsServer.pid, 'node'],
      [loadServer.pid, 'node'],
    ] as const;
    for (const [pid, want] of programs) {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (!comm.startsWith(want)) throw new Error(`pid ${pid} is ${comm}, expected ${want}`);
    }
    /**
     * Two agents' worth of warren: A's proxy (outbound) and B's (HBONE inbound), each its own
     * process, running (with A's and B's pod rules) only while their path is measured, so that
     * another build (DATAPLANE_COMPARE) can own the pods' ports in its turn.
     */
    const warrenRig = (name: PathName, proxy: string, mode: ProxyMode = 'pooled', flags = PROXY_FLAGS): PathRig => {
      let running: Child[] = [];
      const rig: PathRig = {
        name,
        host: b.ipv4,
        port: SERVER_PORT,
        iperfHost: b.ipv4,
        iperfPort: IPERF_PORT,
        pids: [],
        rssPids: [],
        gcPids: [],
        async enter() {
          running = await startWarren(proxy, mode, flags);
          rig.pids = running.map((c) => c.pid);
          rig.rssPids = rig.gcPids = mode === 'unpooled' ? [] : rig.pids;
          await rules.on();
        },
        async leave() {
          await rules.off();
          for (const c of running) await c.stop();
          running = [];
        },
      };
      return rig;
    };
    const nothing = async (): Promise<void> => undefined;
    /** a client in A listening on 127.0.0.1, a server in B, running through the whole benchmark */
    const tunnelPair = (name: PathName, ports: PairPorts, pids: number[], gcPids: number[]): PathRig => ({
      name,
      host: '127.0.0.1',
      port: ports.load.local,
      iperfHost: '127.0.0.1',
      iperfPort: ports.iperf.local,
      pids,
      rssPids: pids,
      gcPids,
      enter: nothing,
      leave: nothing,
    });
    const rigs: PathRig[] = [
      { name: 'direct', host: b.ipv4, port: SERVER_PORT, iperfHost: b.ipv4, iperfPort: IPERF_PORT, pids: [], rssPids: [loadServer.pid], gcPids: [loadServer.pid], enter: nothing, leave: nothing },
      tunnelPair('stunnel', STUNNEL, [stunnelClient.pid, stunnelServer.pid], []),
      {
        // stunnel's pair reached as warren's paths are: B:port, captured in A (only while measured: it takes direct's B:port)
        name: 'stunnel-captured',
        host: b.ipv4,
        port: SERVER_PORT,
        iperfHost: b.ipv4,
        iperfPort: IPERF_PORT,
        pids: [stunnelClient.pid, stunnelServer.pid],
        rssPids: [],
        gcPids: [],
        enter: () =>
          applyBenchCapture(a, [
            { daddr: b.ipv4, dport: SERVER_PORT, toPort: STUNNEL.load.local },
            { daddr: b.ipv4, dport: IPERF_PORT, toPort: STUNNEL.iperf.local },
          ]),
        leave: () => removeBenchCapture(a),
      },
      tunnelPair('node-tls', NODE_TLS, [nodeTlsClient.pid, nodeTlsServer.pid], [nodeTlsClient.pid, nodeTlsServer.pid]),
      warrenRig('warren', PROXY),
      warrenRig('native', PROXY, 'native'),
      warrenRig('warren-nopool', PROXY, 'unpooled'),
      warrenRig('warren-real', PROXY, 'real'),
    ];
    if (env['DATAPLANE_COMPARE'] !== undefined) rigs.push(warrenRig('before', env['DATAPLANE_COMPARE'], env['DATAPLANE_COMPARE_DATAPLANE'] === 'native' ? 'native' : 'pooled', COMPARE_FLAGS));

    const rounds: RoundMeasure[] = [];
    const measured = rigs.filter((r) => ONLY_PATHS.has(r.name));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const rig of rotated(measured, round - 1)) {
        const t0 = Date.now();
        await rig.enter();
        try {
          rounds.push(await measure(round, a, b, rig));
        } finally {
          await rig.leave();
        }
        const m = rounds[rounds.length - 1]!;
        console.error(roundLine(m, (Date.now() - t0) / 1000));
      }
    }
    return { config: { ...DATAPLANE, rounds: ROUNDS, rrRequests: RR_REQUESTS, clockTicks, nofileGranted: nofile, ...versions }, rounds, summary: summarize(rounds), seconds: (Date.now() - started) / 1000 };
  } finally {
    if (rulesOn) await rules.off().catch(() => undefined);
    for (const p of procs.reverse()) await p.stop();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The paths in round r's order (r from 0), a balanced Latin square (Williams' design): a
 * fixed order put each path always after the same one (stunnel-captured after stunnel,
 * native after the Node paths), so whatever a path leaves behind on the shared machine
 * (its processes stopping, its rules removed, caches) weighed on the next path's figures in
 * every round. Here, over n rounds (2n for an odd count of paths), each path takes each
 * position, and follows each other path, equally often.
 */
export function rotated<T>(paths: readonly T[], r: number): T[] {
  const n = paths.length;
  if (n === 0) return [];
  // 0, 1, n-1, 2, n-2, …: each difference between neighbours mod n occurs once
  const base = Array.from({ length: n }, (_, i) => (i % 2 === 1 ? (i + 1) / 2 : (n - i / 2) % n));
  const k = r % (2 * n);
  const row = base.map((x) => paths[(x + k) % n]!);
  return k < n ? row : row.reverse();
}

/** One path's measures of one round, as printed while the run goes and kept in the saved result. */
export function roundLine(m: RoundMeasure, seconds?: number): string {
  return (
    `round ${m.round} ${m.path}: ${m.gbit1.toFixed(2)} / ${m.gbit8.toFixed(2)} Gbit/s, p50 ${m.p50us.toFixed(0)} µs p99 ${m.p99us.toFixed(0)} µs (round trip ${m.rttP50us.toFixed(0)} / ${m.rttP99us.toFixed(0)} µs), ` +
    `CPU ${m.cpuSecondsPerGB1.toFixed(2)} / ${m.cpuSecondsPerGB8.toFixed(2)} s/GB, ${m.rrLate} late${m.rrBehind ? ' (behind)' : ''}, ` +
    `${m.connPerSecond.toFixed(0)} conn/s, ${m.idleOpened} idle (${m.rssKiBPerIdleConnection.toFixed(2)} KiB each)` +
    (seconds === undefined ? '' : `, ${seconds.toFixed(1)} s`) +
    ` (${Object.entries(m.phaseSeconds).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')})`
  );
}
