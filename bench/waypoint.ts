/**
 * `npm run bench -- waypoint`: HTTP/1.1 keep-alive, 1 KiB responses, through
 * (a) nothing (client → backend), (b) the waypoint process, (c) nginx as a
 * reverse proxy on the same path (PROXY v2 in, keep-alive upstream): the
 * baseline. Requests/s at saturation, p50/p99 at a fixed rate, CPU-seconds
 * per 1000 requests and RSS of the proxy. All on loopback: the node agents'
 * HBONE hops around the waypoint are not in this path (bench `dataplane`
 * measures those). The resilience rows (docs/architecture.md §15) send the
 * same requests through the same waypoint to a Service of the same backend
 * with one policy attached, set so it never refuses: the cost of applying it.
 *
 * WARREN_BENCH_BASELINE_DIST=<another build's dist/> starts that build's
 * waypoint too, against the same API server and backend, and runs the two
 * waypoints' rows interleaved (WARREN_BENCH_WAYPOINT_ROUNDS rounds, default 3):
 * a change measured against the build before it in the same run.
 * WARREN_BENCH_WAYPOINT_NODE_ARGS (space-separated; default: the waypoint Deployment's
 * NODE_OPTIONS, src/config/proxy-node-options.ts) go to every waypoint's node, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` or V8 heap flags;
 * WARREN_BENCH_BASELINE_NODE_ARGS, when set, to the baseline build's instead (with
 * WARREN_BENCH_BASELINE_DIST=dist, this build with and without a flag in the same rounds).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { execa } from 'execa';
import { PROXY_NODE_OPTIONS } from '../src/config/proxy-node-options.js';

/** What the bench needs of a child process (execa's types differ per option set). */
interface Child extends PromiseLike<unknown> {
  stdout: NodeJS.ReadableStream | null;
  kill(signal?: NodeJS.Signals): boolean;
}
import { typedCrds } from '../src/policy/crd-manifests.js';
import { kubeconfig } from '../src/sim/apiserver/kubeconfig.js';
import { encodeProxyV2 } from '../src/waypoint/proxy-protocol.js';

const API_CHILD = fileURLToPath(new URL('./apiserver-child.js', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const BACKEND = `
import { createServer } from 'node:http';
const body = Buffer.alloc(1024, 120);
const s = createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body); });
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.2', () => console.log(JSON.stringify({ port: s.address().port })));
`;

export interface WaypointBenchRow {
  path: string;
  saturationRps: number;
  p50Ms: number;
  p99Ms: number;
  fixedRate: number;
  cpuSecondsPer1000?: number;
  rssMiB?: number;
}

function firstJsonLine(child: Child, match: (o: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('child not ready in 30 s')), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (const line of buf.split('\n').slice(0, -1)) {
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          if (match(o)) {
            clearTimeout(timer);
            resolve(o);
          }
        } catch {
          // not JSON
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
  });
}

function cpuSeconds(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then((s) => {
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
  });
}
const rssMiB = async (pid: number): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

interface Target {
  port: number;
  proxyHeader?: Buffer;
}

function agentFor(t: Target, max: number): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: max });
  (agent as unknown as { createConnection: () => Socket }).createConnection = () => {
    const s = connect({ host: t.proxyHeader ? '127.0.0.1' : '127.0.0.2', port: t.port, noDelay: true });
    if (t.proxyHeader) s.write(t.proxyHeader);
    return s;
  };
  return agent;
}

function once(agent: Agent): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: 'web.bench', path: '/', timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Closed loop: `concurrency` connections each sending the next request when the last answered. */
async function saturate(t: Target, concurrency: number, seconds: number): Promise<number> {
  const agent = agentFor(t, concurrency);
  const end = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await once(agent);
        done++;
      }
    }),
  );
  agent.destroy();
  return done / seconds;
}

/** Open loop at `rate` requests/s: latency percentiles without coordinated omission of slow answers. */
async function fixedRate(t: Target, rate: number, seconds: number): Promise<{ p50: number; p99: number }> {
  const agent = agentFor(t, 64);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < rate * seconds; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    // measured from when the request was due, so a stalled proxy is not hidden by sending late
    pending.push(once(agent).then(() => void latencies.push(performance.now() - due)));
  }
  await Promise.all(pending);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { p50: latencies[Math.floor(latencies.length * 0.5)]!, p99: latencies[Math.floor(latencies.length * 0.99)]! };
}

export async function benchWaypoint(): Promise<WaypointBenchRow[]> {
  if ((await execa('nginx', ['-v'], { reject: false })).exitCode !== 0) throw new Error('the waypoint benchmark needs nginx as its baseline: apt-get install nginx');
  const dir = await mkdtemp(`${tmpdir()}/warren-bench-waypoint-`);
  const children: Child[] = [];
  try {
    const api = execa(process.execPath, [API_CHILD, `${dir}/api`], { buffer: false, cleanup: true, reject: false });
    children.push(api);
    const a = await firstJsonLine(api, (o) => o.ready === true);
    const kcText = kubeconfig(`https://127.0.0.1:${a.port}`, String(a.ca), String(a.token));
    await writeFile(`${dir}/kubeconfig`, kcText);
    const kc = new KubeConfig();
    kc.loadFromString(kcText);
    const backend = execa(process.execPath, ['--input-type=module', '-e', BACKEND], { buffer: false, cleanup: true, reject: false });
    children.push(backend);
    const backendPort = Number((await firstJsonLine(backend, (o) => typeof o.port === 'number')).port);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'bench' } } });
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
    const service = async (name: string): Promise<Buffer> => {
      const svc = await core.createNamespacedService({ namespace: 'bench', body: { metadata: { name }, spec: { ports: [{ name: 'http', port: 80 }] } } });
      await kc.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
        namespace: 'bench',
        body: { metadata: { name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } }, addressType: 'IPv4', ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.2'], conditions: { ready: true } }] },
      });
      return encodeProxyV2({ source: { address: '10.244.1.5', port: 40000 }, destination: { address: svc.spec!.clusterIP!, port: 80 }, clientSpiffeId: 'spiffe://cluster.local/ns/bench/sa/client' });
    };
    const header = await service('web');
    const custom = kc.makeApiClient(CustomObjectsApi);
    const policy = (plural: string, kind: string, name: string, spec: object) => custom.createNamespacedCustomObject({ group: 'networking.warren.io', version: 'v1', namespace: 'bench', plural, body: { apiVersion: 'networking.warren.io/v1', kind, metadata: { name, namespace: 'bench' }, spec } });
    const rateLimited = await service('web-rl');
    await policy('backendtrafficpolicies', 'BackendTrafficPolicy', 'web-rl', { targetRefs: [{ group: '', kind: 'Service', name: 'web-rl' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 1_000_000_000, unit: 'Second' } }] } } });
    const breaker = await service('web-cb');
    await policy('destinationrules', 'DestinationRule', 'web-cb', { host: 'web-cb', trafficPolicy: { connectionPool: { tcp: { maxConnections: 1024 }, http: { http1MaxPendingRequests: 1024 } } } });
    const outlier = await service('web-od');
    await policy('destinationrules', 'DestinationRule', 'web-od', { host: 'web-od', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' } } });

    // Istio's default: no access log (meshConfig.accessLogFile unset); metrics on.
    const flags = (value: string): string[] => value.split(' ').filter((a) => a !== '');
    // by default the flags every waypoint Deployment sets (src/gateway/waypoint-objects.ts)
    const nodeArgs = flags(process.env.WARREN_BENCH_WAYPOINT_NODE_ARGS ?? PROXY_NODE_OPTIONS);
    const startWaypoint = async (main: string, runtimeArgs: string[]): Promise<{ pid: number; port: number }> => {
      const child = execa(process.execPath, [...runtimeArgs, main, 'waypoint-proxy', '--name', 'waypoint', '--namespace', 'bench', '--kubeconfig', `${dir}/kubeconfig`, '--listen-address', '127.0.0.1', '--listen-port', '0', '--admin-port', '0', '--readiness-port', '0', '--admin-address', '127.0.0.1', '--access-log-level', 'off'], { buffer: false, cleanup: true, reject: false });
      children.push(child);
      return { pid: child.pid!, port: Number((await firstJsonLine(child, (o) => o.msg === 'waypoint ready')).listen) };
    };
    const w = await startWaypoint(MAIN, nodeArgs);
    const baselineDist = process.env.WARREN_BENCH_BASELINE_DIST;
    const b = baselineDist === undefined ? undefined : await startWaypoint(resolve(baselineDist, 'src/cli/main.js'), flags(process.env.WARREN_BENCH_BASELINE_NODE_ARGS ?? process.env.WARREN_BENCH_WAYPOINT_NODE_ARGS ?? PROXY_NODE_OPTIONS));

    const nginxPort = 20000 + Math.floor(Math.random() * 20000);
    await writeFile(
      `${dir}/nginx.conf`,
      `worker_processes 1; master_process off; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http { access_log off;
  upstream backend { server 127.0.0.2:${backendPort}; keepalive 256; }
  server { listen 127.0.0.1:${nginxPort} proxy_protocol;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header X-Request-Id $request_id; } } }
`,
    );
    const nginx = execa('nginx', ['-p', dir, '-c', `${dir}/nginx.conf`, '-g', 'daemon off;'], { buffer: false, cleanup: true, reject: false });
    children.push(nginx);
    await new Promise((r) => setTimeout(r, 500));

    const plain = { path: 'warren waypoint', target: { port: w.port, proxyHeader: header }, pid: w.pid };
    const rounds = b === undefined ? [plain] : Array.from({ length: Number(process.env.WARREN_BENCH_WAYPOINT_ROUNDS ?? 3) }, (_, i) => [
      { path: `baseline build waypoint (round ${i + 1})`, target: { port: b.port, proxyHeader: header }, pid: b.pid },
      { ...plain, path: `warren waypoint (round ${i + 1})` },
    ]).flat();
    const targets: Array<{ path: string; target: Target; pid?: number }> = [
      { path: 'direct (client → backend)', target: { port: backendPort } },
      { path: 'nginx reverse proxy (baseline)', target: { port: nginxPort, proxyHeader: header }, pid: nginx.pid! },
      ...rounds,
      { path: 'warren waypoint + rate limit', target: { port: w.port, proxyHeader: rateLimited }, pid: w.pid },
      { path: 'warren waypoint + circuit breaker', target: { port: w.port, proxyHeader: breaker }, pid: w.pid },
      { path: 'warren waypoint + outlier detection', target: { port: w.port, proxyHeader: outlier }, pid: w.pid },
    ];
    const rows: WaypointBenchRow[] = [];
    const rate = 500;
    for (const t of targets) {
      for (let i = 0; i < 200; i++) await once(agentFor(t.target, 1)); // warm up (JIT, pools)
      const cpu0 = t.pid ? await cpuSeconds(t.pid) : 0;
      const sat = await saturate(t.target, 16, 5);
      const cpu1 = t.pid ? await cpuSeconds(t.pid) : 0;
      const lat = await fixedRate(t.target, rate, 4);
      rows.push({
        path: t.path,
        saturationRps: sat,
        p50Ms: lat.p50,
        p99Ms: lat.p99,
        fixedRate: rate,
        ...(t.pid ? { cpuSecondsPer1000: ((cpu1 - cpu0) / (sat * 5)) * 1000, rssMiB: await rssMiB(t.pid) } : {}),
      });
    }
    return rows;
  } finally {
    for (const c of children.reverse()) {
      c.kill('SIGTERM');
      await c;
    }
    await rm(dir, { recursive: true, force: true });
  }
}
