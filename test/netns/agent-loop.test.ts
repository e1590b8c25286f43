/**
 * Issue 17 finding 1 on the real kernel: an app in an enrolled pod (or a
 * peer) that dials the agent's own listeners in the pod — :15001, :15006,
 * :15008 at loopback or the pod's IPs, directly or through the capture
 * rules, or as an HBONE CONNECT target — is refused at once, instead of
 * the agent forwarding the connection into itself again and again. This
 * test process is the node agent: pod A's and pod C's PodProxy run here,
 * with A's and C's nft rules applied; B is an ordinary pod outside the mesh.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import type { LoopPath } from '../../src/tunnel/dataplane.js';
import { HboneError, HbonePool } from '../../src/tunnel/hbone-pool.js';
import { DEFAULT_HBONE_LIMITS } from '../../src/tunnel/hbone-limits.js';
import { NativeHub } from '../../src/tunnel/native-hub.js';
import { NativePodProxy } from '../../src/tunnel/native-pod-proxy.js';
import { PodProxy } from '../../src/tunnel/pod-proxy.js';
import { eventually } from '../helpers/apiserver.js';
import { createTopology, type TestPod } from '../helpers/netns.js';
import { applyPodRules, removePodRules } from '../helpers/pod-rules.js';
import { rootTest } from '../helpers/root.js';
import { proxyOptions, testDataPlane } from '../helpers/test-dataplane.js';

const TD = 'cluster.local';
const idOf = (sa: string): SpiffeId => ({ trustDomain: TD, namespace: 'loop', serviceAccount: sa });

interface Attempt {
  ms: number;
  /** ECONNRESET: refused with an RST; "hung": nothing within the cap */
  outcome: string;
}

/** A plain TCP connect from inside `pod`, as an app makes it (no mark: the capture rules apply). */
function tcpAttempt(pod: TestPod, host: string, port: number, capMs: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = new net.Socket({ fd: createSocket({ netns: pod.path, family: net.isIPv6(host) ? 6 : 4 }) });
    let outcome = 'closed';
    const timer = setTimeout(() => {
      outcome = 'hung';
      socket.destroy();
    }, capMs);
    socket.on('error', (err: NodeJS.ErrnoException) => (outcome = err.code ?? err.message));
    socket.on('data', () => (outcome = 'data'));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started, outcome });
    });
    socket.connect(port, host);
  });
}

/** An HBONE CONNECT through `pool` to `target` at pod A's agent; the outcome is the HTTP status. */
async function hboneAttempt(pool: HbonePool, peer: { ip: string; id: SpiffeId }, target: { ip: string; port: number }, capMs: number): Promise<Attempt> {
  const started = performance.now();
  const answer = pool.open(peer.ip, peer.id, target).then(
    (stream) => {
      stream.close();
      return '200';
    },
    (err: HboneError) => String(err.status ?? err.message),
  );
  const outcome = await Promise.race([answer, sleep(capMs).then(() => 'hung')]);
  return { ms: performance.now() - started, outcome };
}

/** B ↔ C through C's proxy (plaintext inbound capture, outbound passthrough): one echo exchange. */
function echoExchange(from: TestPod, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = new net.Socket({ fd: createSocket({ netns: from.path, family: net.isIPv6(host) ? 6 : 4 }) });
    socket.setTimeout(5000, () => socket.destroy(new Error(`no echo from ${host}:${port} within 5 s`)));
    socket.on('error', reject);
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      if (d.toString() === 'ping') resolve(performance.now() - started);
      else reject(new Error(`echo answered ${d.toString()}`));
    });
    socket.connect(port, host, () => socket.write('ping'));
  });
}

async function echoServer(pod: TestPod, port: number, family: 4 | 6): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen({ fd: createListener({ netns: pod.path, port, family }) }, resolve));
  return server;
}

const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Both data paths (the agent's --dataplane): the same refusals, counted the same way.
for (const mode of ['node', 'native'] as const)
rootTest(`--dataplane ${mode}: connections to the agent’s own listeners in a pod are reset within 100 ms on every path; 1000 of them leave no descriptor or CPU behind, and other pods’ traffic flows meanwhile`, async () => {
  const topo = await createTopology(3);
  const [a, b, c] = topo.pods as [TestPod, TestPod, TestPod];
  const closers: Array<() => unknown> = [];
  try {
    const { dataplane, bundle, certs, loops } = await testDataPlane(TD, 'loop', [{ name: 'a', pod: a, enrolled: true }, { name: 'b', pod: b, enrolled: false }, { name: 'c', pod: c, enrolled: true }]);
    const hub = mode === 'native' ? new NativeHub(dataplane, 2) : undefined;
    if (hub !== undefined) closers.push(() => hub.stop());
    for (const [name, pod] of [['a', a], ['c', c]] as const) {
      await applyPodRules('nft', pod);
      closers.push(() => removePodRules('nft', pod));
      const options = proxyOptions(dataplane, { pod: `loop/${name}`, namespace: 'loop', identity: idOf(name), netns: pod });
      const proxy = hub === undefined ? await PodProxy.start(options) : await NativePodProxy.start(options, hub);
      closers.push(() => proxy.close(0));
    }
    for (const [pod, port] of [[b, 8080], [c, 80]] as const) {
      for (const family of [4, 6] as const) {
        const server = await echoServer(pod, port, family);
        closers.push(() => server.close());
      }
    }
    // B's HBONE client, as B's agent would be if B were enrolled.
    const pool = new HbonePool({ netns: b.path, certificate: () => certs.get('b'), bundle, trustDomain: TD, limits: DEFAULT_HBONE_LIMITS });
    closers.push(() => pool.close());
    const peerA = { ip: a.ipv4, id: idOf('a') };

    const cases: Array<{ name: string; path: LoopPath; run: (capMs: number) => Promise<Attempt>; refused: string }> = [];
    const tcp = (path: LoopPath, from: TestPod, host: string, port: number): void => {
      cases.push({ name: `${path} ${from === a ? 'A' : 'B'} → ${host}:${port}`, path, run: (cap) => tcpAttempt(from, host, port, cap), refused: 'ECONNRESET' });
    };
    // From the app in A: the listeners dialed directly (loopback is not captured)…
    for (const host of ['127.0.0.1', '::1']) {
      tcp('outbound', a, host, 15001);
      tcp('inbound', a, host, 15006);
    }
    // …and through the capture rules, at A's own addresses.
    for (const host of [a.ipv4, a.ipv6]) for (const port of [15001, 15006, 15008]) tcp('outbound', a, host, port);
    // From B, at A's addresses: captured on A's plaintext inbound listener.
    for (const host of [a.ipv4, a.ipv6]) for (const port of [15001, 15006]) tcp('inbound', b, host, port);
    // An HBONE CONNECT naming one of A's agent ports.
    for (const target of [{ ip: a.ipv4, port: 15001 }, { ip: a.ipv4, port: 15006 }, { ip: a.ipv4, port: 15008 }, { ip: a.ipv6, port: 15008 }]) {
      cases.push({ name: `hbone B → CONNECT ${target.ip}:${target.port}`, path: 'hbone', run: (cap) => hboneAttempt(pool, peerA, target, cap), refused: '400' });
    }

    // Each case once, alone, first: the HBONE connection to A is made here too.
    for (const k of cases) {
      const r = await k.run(1000);
      assert.equal(r.outcome, k.refused, `${k.name}: refused (${k.refused}), got ${r.outcome} after ${r.ms.toFixed(0)} ms`);
      assert.ok(r.ms < 100 || k.path === 'hbone', `${k.name}: reset after ${r.ms.toFixed(1)} ms`);
    }
    // The first CONNECT paid for the tunnel's handshake; a second one is the refusal alone.
    for (const k of cases.filter((x) => x.path === 'hbone')) {
      const r = await k.run(1000);
      assert.equal(r.outcome, k.refused, k.name);
      assert.ok(r.ms < 100, `${k.name}: refused after ${r.ms.toFixed(1)} ms`);
    }
    // Every warm-up refusal counted (each case once, the HBONE ones twice) before the count restarts.
    const warmUp = cases.length + cases.filter((x) => x.path === 'hbone').length;
    await eventually(() => loops.length >= warmUp, `${warmUp} warm-up refusals counted`, 5000);
    assert.equal(loops.length, warmUp, 'one loop counted per warm-up refusal');
    loops.length = 0;
    const fdsBefore = openDescriptors();

    // Other pods' traffic through the same agent meanwhile: B → C's app (C's inbound capture) and C → B (C's outbound).
    let attacking = true;
    const echoLatencies: number[] = [];
    const otherTraffic = (async () => {
      for (let i = 0; attacking || i < 20; i++) echoLatencies.push(await (i % 2 === 0 ? echoExchange(b, c.ipv4, 80) : echoExchange(c, b.ipv4, 8080)));
    })();

    const N = 1000;
    const results = new Map<string, Attempt[]>(cases.map((k) => [k.name, []]));
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < N) {
          const k = cases[next++ % cases.length]!;
          results.get(k.name)!.push(await k.run(2000));
        }
      }),
    );
    attacking = false;
    await otherTraffic;

    for (const k of cases) {
      const rs = results.get(k.name)!;
      const wrong = rs.filter((r) => r.outcome !== k.refused);
      assert.equal(wrong.length, 0, `${k.name}: ${wrong.length} of ${rs.length} not refused (${wrong[0]?.outcome})`);
      assert.ok(median(rs.map((r) => r.ms)) < 100, `${k.name}: median ${median(rs.map((r) => r.ms)).toFixed(1)} ms`);
    }
    const counted = (p: LoopPath): number => loops.filter((x) => x === p).length;
    const expected = (p: LoopPath): number => cases.filter((k) => k.path === p).reduce((n, k) => n + results.get(k.name)!.length, 0);
    for (const p of ['outbound', 'inbound', 'hbone'] as const) assert.equal(counted(p), expected(p), `loops counted on the ${p} path`);

    assert.ok(echoLatencies.length >= 20, `${echoLatencies.length} exchanges of other pods`);
    assert.ok(Math.max(...echoLatencies) < 1000, `other pods' exchanges took up to ${Math.max(...echoLatencies).toFixed(0)} ms`);

    // Nothing left behind: descriptors back where they were, and no CPU spent once the attempts are over.
    await eventually(() => openDescriptors() - fdsBefore <= 8, 'descriptors closed', 2000).catch(() => undefined);
    assert.ok(openDescriptors() - fdsBefore <= 8, `descriptors: ${fdsBefore} before, ${openDescriptors()} after ${N} attempts`);
    const cpu = process.cpuUsage();
    await sleep(1000);
    const spent = process.cpuUsage(cpu);
    const cpuMs = (spent.user + spent.system) / 1000;
    assert.ok(cpuMs < 100, `${cpuMs.toFixed(0)} ms of CPU in the second after the attempts`);
    console.log(`# ${N} attempts over ${cases.length} cases; medians per case ${cases.map((k) => median(results.get(k.name)!.map((r) => r.ms)).toFixed(1)).join('/')} ms; descriptors ${fdsBefore} → ${openDescriptors()}; CPU after: ${cpuMs.toFixed(0)} ms/s; other pods: ${echoLatencies.length} exchanges, max ${Math.max(...echoLatencies).toFixed(0)} ms`);
  } finally {
    for (const close of closers.reverse()) await close();
    await topo.destroy();
  }
});
