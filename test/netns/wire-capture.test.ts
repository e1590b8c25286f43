/**
 * The demo's packet capture (src/sim/demo/capture.ts) on the real kernel, on a
 * loaded machine: a request that crossed the wire before `stop` is in the
 * capture every time, because tcpdump is stopped only once it has written what
 * the caller looks for (SIGINT alone drops what it had not read yet); and a
 * capture that never shows it still stops, after the bound.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { startCapture } from '../../src/sim/demo/capture.js';
import { parsePcap } from '../../src/sim/demo/pcap.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import { createTopology, type TestPod } from '../helpers/netns.js';
import { rootTest } from '../helpers/root.js';

const ROUNDS = 20;

/** One request from `from` to the echo app on `to`, answered before it returns. */
function request(from: TestPod, to: TestPod, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new net.Socket({ fd: createSocket({ netns: from.path, family: 4 }) });
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('error', reject);
    socket.once('data', () => {
      socket.end();
      resolve();
    });
    socket.connect(9000, to.ipv4, () => socket.write(text));
  });
}

rootTest(`the capture holds a request that crossed the wire before stop, ${ROUNDS} of ${ROUNDS} times under CPU load; a capture that never shows it stops after its bound`, async () => {
  const topo = await createTopology(2);
  const [a, b] = topo.pods as [TestPod, TestPod];
  const dir = await mkdtemp(`${tmpdir()}/wrt-capture-`);
  // Busy processes, one per core, for at most a minute: the loaded machine the demo once missed a packet on.
  const load: ChildProcess[] = Array.from({ length: availableParallelism() }, () => spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end);'], { stdio: 'ignore' }));
  const app = net.createServer((s) => {
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => s.write(d));
  });
  try {
    await new Promise<void>((resolve) => app.listen({ fd: createListener({ netns: b.path, port: 9000, family: 4 }) }, resolve));
    const missed: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const marker = `GET /capture-${i}-${Date.now()}`;
      const capture = await startCapture(topo.bridgeNetns, 'br0', `${dir}/${i}.pcap`);
      await request(a, b, marker);
      const segments = parsePcap(await capture.stop((s) => s.some((x) => x.payload.includes(marker))));
      if (!segments.some((x) => x.payload.includes(marker))) missed.push(i);
    }
    assert.deepEqual(missed, [], `rounds whose capture lacks the request that crossed the wire: ${missed.join(', ')}`);

    const capture = await startCapture(topo.bridgeNetns, 'br0', `${dir}/never.pcap`);
    const started = performance.now();
    await capture.stop(() => false, 500);
    const ms = performance.now() - started;
    assert.ok(ms >= 500 && ms < 3000, `a capture whose condition never holds stopped after ${ms.toFixed(0)} ms (bound 500 ms)`);
  } finally {
    for (const p of load) p.kill('SIGKILL');
    app.close();
    await rm(dir, { recursive: true, force: true });
    await topo.destroy();
  }
});
