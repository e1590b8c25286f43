/**
 * The traffic path of docs/architecture.md §2, §3 on the real kernel, for both backends:
 * pod A's rules capture its outbound and inbound TCP; this test process plays
 * the node agent (listeners made in A's netns by the addon), forwards
 * outbound connections from a marked socket and delivers inbound ones with the
 * client's IP as source.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rootTest } from '../helpers/root.js';
import { createTopology, type TestPod } from '../helpers/netns.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import { listenInPod } from '../../src/tunnel/pod-listener.js';
import { forwardOutbound, deliverInbound, type ForwardResult } from '../../src/tunnel/passthrough.js';
import { PORTS, PROXY_MARK } from '../../src/redirect/constants.js';
import { applyPodRules, removePodRules, snapshotRules, BACKENDS } from '../helpers/pod-rules.js';
import { createBackend } from '../../src/redirect/detect.js';
import { systemRunner } from '../../src/redirect/runner.js';

interface Peer {
  /** what the server saw as the client address */
  remote: string;
  /** every byte the server received */
  received: Buffer;
}

/** A server in `pod`'s netns that records the client address and bytes, echoes them, and half-closes after the client's FIN. */
async function startServer(pod: TestPod, port: number, family: 4 | 6 = 4): Promise<{ server: net.Server; peers: Peer[] }> {
  const peers: Peer[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const peer: Peer = { remote: s.remoteAddress ?? '', received: Buffer.alloc(0) };
    peers.push(peer);
    s.on('data', (d: Buffer) => {
      peer.received = Buffer.concat([peer.received, d]);
      s.write(d);
    });
    // Half-close: the client's FIN reaches us; we still answer afterwards.
    s.on('end', () => s.end('bye'));
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve) => server.listen({ fd: createListener({ netns: pod.path, port, family }) }, resolve));
  return { server, peers };
}

/** Connects from inside `pod` as an ordinary app would (no mark), sends `payload`, half-closes, returns all it read. */
function clientExchange(pod: TestPod, host: string, port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const fd = createSocket({ netns: pod.path, family: net.isIPv6(host) ? 6 : 4 });
    const socket = new net.Socket({ fd, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.connect(port, host, () => socket.end(payload));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from ${host}:${port} within 10 s`)));
  });
}

function payload(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/**
 * The agent's part in `pod`: its :15001 and :15006 listeners (both families) forwarding
 * outbound connections and delivering inbound ones; what each did is recorded.
 */
async function playAgent(pod: TestPod, closers: Array<() => void>): Promise<{ outbound: ForwardResult[]; inbound: ForwardResult[] }> {
  const outbound: ForwardResult[] = [];
  const inbound: ForwardResult[] = [];
  for (const family of [4, 6] as const) {
    const out = await listenInPod({ netns: pod.path, port: PORTS.outbound, family, mark: PROXY_MARK.value }, (s) => {
      void forwardOutbound(s, pod.path, PROXY_MARK.value).then((r) => outbound.push(r));
    });
    const inb = await listenInPod({ netns: pod.path, port: PORTS.inbound, family, mark: PROXY_MARK.value }, (s) => {
      void deliverInbound(s, pod.path, PROXY_MARK.value).then((r) => inbound.push(r));
    });
    closers.push(() => out.close(), () => inb.close());
  }
  return { outbound, inbound };
}

for (const backend of BACKENDS) {
  rootTest(`[${backend}] outbound and inbound capture, original destination, source IPs, half-close, clean removal`, async () => {
    const topo = await createTopology(2);
    const closers: Array<() => void> = [];
    try {
      const [a, b] = topo.pods as [TestPod, TestPod];
      const before = await snapshotRules(a.netns);
      const serverB = await startServer(b, 8080);
      const serverB6 = await startServer(b, 8080, 6);
      const appA = await startServer(a, 80);
      closers.push(() => serverB.server.close(), () => serverB6.server.close(), () => appA.server.close());

      await applyPodRules(backend, a);
      const { outbound, inbound } = await playAgent(a, closers);

      // A → B:8080 is captured on :15001, re-made from A, and B sees A's IP.
      const data = payload(3 * 1024 * 1024 + 17);
      const reply = await clientExchange(a, b.ipv4, 8080, data);
      assert.ok(reply.equals(Buffer.concat([data, Buffer.from('bye')])), 'echo + post-FIN reply arrived intact');
      assert.equal(serverB.peers.length, 1);
      assert.equal(serverB.peers[0]!.remote, a.ipv4, 'B sees A as the source');
      assert.ok(serverB.peers[0]!.received.equals(data), 'B received every byte');
      await waitFor(() => outbound.length === 1);
      assert.deepEqual(outbound[0]!.destination, { family: 4, address: b.ipv4, port: 8080 }, 'SO_ORIGINAL_DST is B:8080');
      assert.equal(outbound[0]!.error, undefined);

      // IPv6: the same through the v6 listener and IP6T_SO_ORIGINAL_DST.
      const reply6 = await clientExchange(a, b.ipv6, 8080, Buffer.from('over v6'));
      assert.equal(reply6.toString(), 'over v6bye');
      assert.equal(serverB6.peers[0]?.remote, a.ipv6);
      await waitFor(() => outbound.length === 2);
      assert.deepEqual(outbound[1]!.destination, { family: 6, address: b.ipv6, port: 8080 });

      // B → A:80 is captured on A's :15006 and delivered with B's IP as source.
      const inReply = await clientExchange(b, a.ipv4, 80, Buffer.from('hello A'));
      assert.equal(inReply.toString(), 'hello Abye');
      assert.equal(appA.peers[0]?.remote, b.ipv4, 'the app in A sees B as the source (IP_TRANSPARENT)');
      await waitFor(() => inbound.length === 1);
      assert.deepEqual(inbound[0]!.destination, { family: 4, address: a.ipv4, port: 80 });

      // Removal: rules gone, A and B talk directly, the ruleset equals the original.
      await removePodRules(backend, a);
      assert.deepEqual(await snapshotRules(a.netns), before);
      const direct = await clientExchange(a, b.ipv4, 8080, Buffer.from('direct'));
      assert.equal(direct.toString(), 'directbye');
      assert.equal(outbound.length, 2, 'the proxy saw no new connection after removal');
      const directIn = await clientExchange(b, a.ipv4, 80, Buffer.from('in'));
      assert.equal(directIn.toString(), 'inbye');
      assert.equal(inbound.length, 1);
    } finally {
      for (const close of closers) close();
      await topo.destroy();
    }
  });
}

/** How a plain connect from inside `pod` ends: 'connected', or the error code (ECONNREFUSED when something reset it). */
function connectOutcome(pod: TestPod, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = new net.Socket({ fd: createSocket({ netns: pod.path, family: net.isIPv6(host) ? 6 : 4 }) });
    socket.connect(port, host, () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
  });
}

for (const backend of BACKENDS) {
  rootTest(`[${backend}] an IPv4-only pod: IPv6 TCP from and to it is refused, never passed uncaptured`, async () => {
    const topo = await createTopology(2);
    const closers: Array<() => void> = [];
    try {
      const [a, b] = topo.pods as [TestPod, TestPod];
      // The kernel gives A an IPv6 address (as it gives every interface a link-local one),
      // but the agent enrolls A as IPv4-only: rules for podIPs [A's IPv4], listeners for IPv4 only.
      const serverB6 = await startServer(b, 8080, 6);
      const appA6 = await startServer(a, 80, 6);
      closers.push(() => serverB6.server.close(), () => appA6.server.close());
      await createBackend(backend, systemRunner).applyPod(a.path, { podIPs: [a.ipv4] });
      const outbound: ForwardResult[] = [];
      const out = await listenInPod({ netns: a.path, port: PORTS.outbound, family: 4, mark: PROXY_MARK.value }, (s) => {
        void forwardOutbound(s, a.path, PROXY_MARK.value).then((r) => outbound.push(r));
      });
      closers.push(() => out.close());

      assert.equal(await connectOutcome(a, b.ipv6, 8080), 'ECONNREFUSED', 'A → B over IPv6 is refused');
      assert.equal(serverB6.peers.length, 0, 'B never saw the IPv6 connection');
      assert.equal(await connectOutcome(b, a.ipv6, 80), 'ECONNREFUSED', 'B → A over IPv6 is refused');
      assert.equal(appA6.peers.length, 0, "A's app never saw the IPv6 connection");
      // IPv6 loopback stays inside the pod and is not captured.
      assert.equal(await connectOutcome(a, '::1', 80), 'connected');
      // IPv4 is still captured.
      const serverB = await startServer(b, 8080);
      closers.push(() => serverB.server.close());
      assert.equal((await clientExchange(a, b.ipv4, 8080, Buffer.from('v4'))).toString(), 'v4bye');
      await waitFor(() => outbound.length === 1);
      await createBackend(backend, systemRunner).removePod(a.path);
    } finally {
      for (const close of closers) close();
      await topo.destroy();
    }
  });
}

/** A plain connection from inside `pod` (no mark), kept open; `roundTrip` echoes one message on it. */
async function openConnection(pod: TestPod, host: string, port: number): Promise<{ roundTrip(text: string): Promise<string>; close(): void }> {
  const socket = new net.Socket({ fd: createSocket({ netns: pod.path, family: net.isIPv6(host) ? 6 : 4 }) });
  let failure: Error | undefined;
  socket.on('error', (err) => (failure = err));
  await new Promise<void>((resolve, reject) => {
    socket.connect(port, host, resolve);
    socket.once('error', reject);
  });
  return {
    roundTrip: (text) =>
      new Promise((resolve, reject) => {
        if (failure !== undefined) return reject(failure);
        const timer = setTimeout(() => reject(new Error(`no echo from ${host}:${port} within 5 s`)), 5000);
        socket.once('data', (d: Buffer) => {
          clearTimeout(timer);
          resolve(d.toString());
        });
        socket.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        socket.once('close', () => {
          clearTimeout(timer);
          reject(new Error(`${host}:${port} closed the connection`));
        });
        socket.write(text);
      }),
    close: () => socket.destroy(),
  };
}

for (const backend of BACKENDS) {
  // README "Enrolling running pods": connections open before enrollment keep flowing outside
  // the capture (as with Istio ambient), new ones are captured. A netns without rules has no
  // conntrack hooks, so the rules' first look at such a connection is a mid-stream packet that
  // conntrack picks up as new: only a SYN may be redirected, or that packet reaches the proxy's
  // listener and the connection is reset.
  rootTest(`[${backend}] connections established before the rules keep flowing, both ways; new ones are captured`, async () => {
    const topo = await createTopology(2);
    const closers: Array<() => void> = [];
    try {
      const [a, b] = topo.pods as [TestPod, TestPod];
      const serverB = await startServer(b, 8080);
      const appA = await startServer(a, 80);
      closers.push(() => serverB.server.close(), () => appA.server.close());
      const out = await openConnection(a, b.ipv4, 8080);
      const into = await openConnection(b, a.ipv4, 80);
      closers.push(out.close, into.close);
      assert.equal(await out.roundTrip('out before'), 'out before');
      assert.equal(await into.roundTrip('in before'), 'in before');

      await applyPodRules(backend, a);
      const { outbound, inbound } = await playAgent(a, closers);

      for (let n = 0; n < 3; n++) {
        assert.equal(await out.roundTrip(`out after ${n}`), `out after ${n}`, 'the outbound connection opened before the rules still works');
        assert.equal(await into.roundTrip(`in after ${n}`), `in after ${n}`, 'the inbound connection opened before the rules still works');
      }
      assert.equal(serverB.peers.length, 1, 'B saw no second connection');
      assert.equal(appA.peers.length, 1, "A's app saw no second connection");

      // New connections, both ways, are captured.
      assert.equal((await clientExchange(a, b.ipv4, 8080, Buffer.from('new out'))).toString(), 'new outbye');
      await waitFor(() => outbound.length === 1);
      assert.equal((await clientExchange(b, a.ipv4, 80, Buffer.from('new in'))).toString(), 'new inbye');
      await waitFor(() => inbound.length === 1);
      assert.equal(await out.roundTrip('out at the end'), 'out at the end');
      await removePodRules(backend, a);
    } finally {
      for (const close of closers) close();
      await topo.destroy();
    }
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within ' + timeoutMs + ' ms');
    await sleep(10);
  }
}
