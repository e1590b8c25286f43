/**
 * The drain of an unenrolled pod on the real kernel (README "Leaving"): when a
 * pod's PodProxy closes with a drain period, every connection it carries keeps
 * working until the deadline and is then reset — on the app side of both
 * legs, whichever agent reaches its deadline first — and none is ended with a
 * FIN instead (a half-open client would never notice a later reset), nor left
 * open. Also a connection whose outbound leg was still being set up when the
 * deadline came: its late upstream leg is reset as soon as it connects.
 *
 * This process is both agents: A (client) and B (server) are enrolled, with
 * their nft rules; C and D are ordinary pods. D drops SYNs to its app until
 * after the deadline, so A's agent connects to it only then (the Node path) or
 * never (the native path closes the connecting socket at the deadline).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import { NativeHub } from '../../src/tunnel/native-hub.js';
import { NativePodProxy } from '../../src/tunnel/native-pod-proxy.js';
import { PodProxy } from '../../src/tunnel/pod-proxy.js';
import { createTopology, inNetns, type TestPod } from '../helpers/netns.js';
import { applyPodRules, removePodRules } from '../helpers/pod-rules.js';
import { rootTest } from '../helpers/root.js';
import { proxyOptions, testDataPlane } from '../helpers/test-dataplane.js';

const TD = 'cluster.local';
const APP_PORT = 9000;
const DRAIN_MS = 1500;
const idOf = (sa: string): SpiffeId => ({ trustDomain: TD, namespace: 'drain', serviceAccount: sa });

/** How one end of a connection ended: a FIN seen ('end'), the error, and when it closed. */
interface Ending {
  fin?: number;
  error?: string;
  closedAt?: number;
  closed: Promise<void>;
}

function watchEnding(socket: net.Socket): Ending {
  const e: Ending = { closed: Promise.resolve() };
  socket.on('end', () => (e.fin ??= Date.now()));
  socket.on('error', (err: NodeJS.ErrnoException) => (e.error ??= err.code ?? err.message));
  e.closed = new Promise((resolve) => socket.once('close', () => resolve(void (e.closedAt = Date.now()))));
  return e;
}

/** An echo app whose accepted connections are kept and watched (half-open capable, so a FIN is seen as one). */
async function echoApp(pod: TestPod): Promise<{ server: net.Server; accepted: Array<{ at: number; ending: Ending; socket: net.Socket }> }> {
  const accepted: Array<{ at: number; ending: Ending; socket: net.Socket }> = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted.push({ at: Date.now(), ending: watchEnding(s), socket: s });
    s.on('data', (d: Buffer) => s.write(d));
  });
  await new Promise<void>((resolve) => server.listen({ fd: createListener({ netns: pod.path, port: APP_PORT, family: 4 }) }, resolve));
  return { server, accepted };
}

/** An app's connection from inside `pod` (no mark: the capture rules apply), half-open capable as the e2e client is. */
function appConnect(pod: TestPod, host: string): net.Socket {
  const socket = new net.Socket({ fd: createSocket({ netns: pod.path, family: 4 }), allowHalfOpen: true } as ConstructorParameters<typeof net.Socket>[0]);
  socket.on('error', () => {}); // judged through watchEnding
  socket.connect(APP_PORT, host);
  return socket;
}

function echoed(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of ${text} within 3 s`)), 3000);
    socket.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d.toString());
    });
    socket.write(text);
  });
}

// Both data paths (the agent's --dataplane): the same drain.
for (const mode of ['node', 'native'] as const)
rootTest(`--dataplane ${mode}: a drained pod: every connection works until the drain deadline, then both legs are reset (no FIN, none left open), whichever agent ends first; a leg still connecting at the deadline is reset when it connects`, async () => {
  const topo = await createTopology(4);
  const [a, b, c, d] = topo.pods as [TestPod, TestPod, TestPod, TestPod];
  const closers: Array<() => unknown> = [];
  try {
    const { dataplane } = await testDataPlane(TD, 'drain', [{ name: 'a', pod: a, enrolled: true }, { name: 'b', pod: b, enrolled: true }, { name: 'c', pod: c, enrolled: false }, { name: 'd', pod: d, enrolled: false }]);
    const hub = mode === 'native' ? new NativeHub(dataplane, 2) : undefined;
    if (hub !== undefined) closers.push(() => hub.stop());
    for (const pod of [a, b]) {
      await applyPodRules('nft', pod);
      closers.push(() => removePodRules('nft', pod));
    }
    const appB = await echoApp(b);
    const appC = await echoApp(c);
    const appD = await echoApp(d);
    for (const app of [appB, appC, appD]) closers.push(() => app.server.close());
    const start = (name: string, pod: TestPod): Promise<PodProxy | NativePodProxy> => {
      const options = proxyOptions(dataplane, { pod: `drain/${name}`, namespace: 'drain', identity: idOf(name), netns: pod });
      return hub === undefined ? PodProxy.start(options) : NativePodProxy.start(options, hub);
    };

    // Each order: the server's agent reaches its deadline first (the e2e's failing case), then the client's.
    for (const [round, firstMs, secondMs] of [['server side first', DRAIN_MS - 300, DRAIN_MS], ['client side first', DRAIN_MS, DRAIN_MS - 300]] as const) {
      const proxyA = await start('a', a);
      const proxyB = await start('b', b);
      let closed = false;
      closers.push(() => (closed ? undefined : Promise.all([proxyA.close(0), proxyB.close(0)])));
      const appsBefore = { b: appB.accepted.length, c: appC.accepted.length, d: appD.accepted.length };

      const paths = [
        { name: 'A → B over HBONE', socket: appConnect(a, b.ipv4), app: appB },
        { name: 'C → B plaintext inbound', socket: appConnect(c, b.ipv4), app: appB },
        { name: 'A → C outbound passthrough', socket: appConnect(a, c.ipv4), app: appC },
      ];
      const endings = paths.map((p) => watchEnding(p.socket));
      for (const p of paths) assert.equal(await echoed(p.socket, 'before'), 'before', `${round}: ${p.name} works`);
      // D answers no SYN until after the deadline: A's agent is still connecting to it then.
      await inNetns(d.netns, 'nft', ['-f', '-'], `table inet wrt-drop { chain input { type filter hook input priority 0; tcp dport ${APP_PORT} drop; }; }`);
      const connecting = appConnect(a, d.ipv4);
      const connectingEnding = watchEnding(connecting);
      await sleep(200);

      const closing = Date.now();
      const done = Promise.all([proxyB.close(firstMs), proxyA.close(secondMs)]).then(() => (closed = true));
      // Drained connections keep working until the deadline.
      await sleep(200);
      for (const p of paths) assert.equal(await echoed(p.socket, 'during'), 'during', `${round}: ${p.name} still works while draining`);
      await done;
      // After the first deadline, D starts answering: the agent's late SYN retransmission connects.
      await sleep(300);
      await inNetns(d.netns, 'nft', ['delete', 'table', 'inet', 'wrt-drop']);

      const firstDeadline = closing + Math.min(firstMs, secondMs);
      for (const [i, p] of paths.entries()) {
        const e = endings[i]!;
        await Promise.race([e.closed, sleep(2000)]);
        assert.ok(e.closedAt !== undefined, `${round}: ${p.name}: the client's connection is closed after the drain (FIN at ${e.fin === undefined ? '-' : e.fin - closing} ms)`);
        assert.equal(e.fin, undefined, `${round}: ${p.name}: ended with a FIN ${e.fin! - closing} ms after the drain began, not reset`);
        assert.equal(e.error, 'ECONNRESET', `${round}: ${p.name}: reset`);
        assert.ok(e.closedAt >= firstDeadline - 50 && e.closedAt <= closing + DRAIN_MS + 500, `${round}: ${p.name}: reset ${e.closedAt - closing} ms after the drain began (deadlines ${firstMs}/${secondMs} ms)`);
      }
      assert.ok(connectingEnding.error !== undefined, `${round}: the client whose upstream was still connecting is reset at the deadline`);
      // The apps' side of every leg is reset too, none left open.
      const served = [...appB.accepted.slice(appsBefore.b), ...appC.accepted.slice(appsBefore.c)];
      assert.equal(served.length, 3, `${round}: the apps served the three connections`);
      for (const s of served) {
        await Promise.race([s.ending.closed, sleep(2000)]);
        assert.ok(s.ending.closedAt !== undefined, `${round}: an app-side connection is still open after the drain`);
        assert.equal(s.ending.fin, undefined, `${round}: an app-side connection was ended with a FIN, not reset`);
      }
      // The leg to D could connect only now (SYN retransmitted ~3 s after the first): it must not stay open.
      // The Node path's connect cannot be taken back, so it arrives and is reset; the native path closes
      // the connecting socket at the deadline, so no SYN follows and D sees nothing.
      const late = await (async () => {
        for (let i = 0; i < 60 && appD.accepted.length === appsBefore.d; i++) await sleep(100);
        return appD.accepted[appsBefore.d];
      })();
      if (mode === 'node') assert.ok(late !== undefined, `${round}: the agent's connection to D arrived after the deadline`);
      else assert.equal(late, undefined, `${round}: the connecting leg closed at the deadline reached D afterwards`);
      if (late !== undefined) {
        await Promise.race([late.ending.closed, sleep(1000)]);
        assert.ok(late.ending.closedAt !== undefined && late.ending.closedAt - late.at < 1000, `${round}: the upstream leg that connected after the deadline is still open`);
      }
      for (const s of [...paths.map((p) => p.socket), connecting]) s.destroy();
    }
  } finally {
    for (const close of closers.reverse()) await close();
    await topo.destroy();
  }
});
