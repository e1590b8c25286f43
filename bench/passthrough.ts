/**
 * Passthrough benchmark (issue 3): one TCP hop A → B, where A's outbound
 * connection is captured by the pod rules and re-made by a proxy from a marked
 * socket in A's netns. Variants, all measured in this run:
 *   direct   A → B, no proxy (the floor)
 *   warren   A → REDIRECT → :15001 (listener made in A's netns by the addon,
 *            owned by a separate Node process) → splice → B
 *   socat    A → socat in A's netns (fork per connection) → B; the same hop
 *            through a widely used C relay, addressed directly (socat cannot
 *            read SO_ORIGINAL_DST), so it skips the NAT step warren pays for
 * Each load runs in its own process inside the netns (bench/tcp-load.ts).
 */
import { execa } from 'execa';
import { createTopology, type TestPod } from '../test/helpers/netns.js';
import { startChild, runJson, type Child } from './child.js';
import { PROXY_MARK } from '../src/redirect/constants.js';
import { applyBenchPodRules, removeBenchPodRules } from './pod-rules.js';

interface Throughput {
  gbitPerSecond: number;
}
interface Latency {
  p50us: number;
  p99us: number;
}
export interface PassthroughRow {
  variant: string;
  gbit1: number;
  gbit8: number;
  p50us: number;
  p99us: number;
}

const SERVER_PORT = 8080;
const LOAD = new URL('./tcp-load.js', import.meta.url).pathname;
const PROXY = new URL('./passthrough-proxy.js', import.meta.url).pathname;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function measure(client: TestPod, host: string, port: number, reps: number): Promise<Omit<PassthroughRow, 'variant'>> {
  const inA = (args: string[]): [string, string[]] => ['ip', ['netns', 'exec', client.netns, process.execPath, LOAD, ...args]];
  const g1: number[] = [];
  const g8: number[] = [];
  const p50: number[] = [];
  const p99: number[] = [];
  for (let i = 0; i < reps; i++) {
    g1.push((await runJson<Throughput>(...inA(['throughput', host, String(port), '1', '512']))).gbitPerSecond);
    g8.push((await runJson<Throughput>(...inA(['throughput', host, String(port), '8', '64']))).gbitPerSecond);
    const lat = await runJson<Latency>(...inA(['latency', host, String(port), '5000']));
    p50.push(lat.p50us);
    p99.push(lat.p99us);
  }
  return { gbit1: median(g1), gbit8: median(g8), p50us: median(p50), p99us: median(p99) };
}

export async function benchPassthrough(reps = 3): Promise<PassthroughRow[]> {
  const topo = await createTopology(2);
  const children: Child[] = [];
  const [a, b] = topo.pods as [TestPod, TestPod];
  try {
    children.push(await startChild('ip', ['netns', 'exec', b.netns, process.execPath, LOAD, 'server', String(SERVER_PORT)]));
    const rows: PassthroughRow[] = [];
    rows.push({ variant: 'direct', ...(await measure(a, b.ipv4, SERVER_PORT, reps)) });

    const socat = await startChild(
      'ip',
      ['netns', 'exec', a.netns, 'socat', 'TCP-LISTEN:16001,bind=127.0.0.1,fork,reuseaddr,nodelay', `TCP:${b.ipv4}:${SERVER_PORT},nodelay`],
      async () => (await execa('ip', ['netns', 'exec', a.netns, 'ss', '-Hltn', 'sport = :16001'])).stdout.trim() !== '',
    );
    rows.push({ variant: 'socat', ...(await measure(a, '127.0.0.1', 16001, reps)) });
    await socat.stop();

    await applyBenchPodRules(a);
    try {
      const proxy = await startChild(process.execPath, [PROXY, a.path, String(PROXY_MARK.value)]);
      children.push(proxy);
      rows.push({ variant: 'warren', ...(await measure(a, b.ipv4, SERVER_PORT, reps)) });
    } finally {
      await removeBenchPodRules(a);
    }
    return rows;
  } finally {
    for (const c of children.reverse()) await c.stop();
    await topo.destroy();
  }
}
