/**
 * The simulator's network on the real kernel: underlay + two nodes, pods wired
 * by the real bridge + host-local CNI plugins from each node's conflist, a
 * built-in app in a pod reached from a pod on the other node.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { rootTest } from '../helpers/root.js';
import { systemRunner } from '../../src/redirect/runner.js';
import { createSocket } from '../../src/native/netns-socket.js';
import { planTopology } from '../../src/sim/topology/plan.js';
import { createTopologyNetwork, destroyTopologyNetwork, listSimNetns, netnsExists } from '../../src/sim/topology/network.js';
import { createPodSandbox, destroyPodSandbox, type PodSandbox } from '../../src/sim/runtime/pod-sandbox.js';
import { startContainer, type RunningContainer } from '../../src/sim/runtime/container.js';

const WARREN_MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname; // dist/src/cli/main.js, what bin/warren runs

function httpGetFrom(netnsPath: string, host: string, port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, path: '/hello', createConnection: () => new net.Socket({ fd: createSocket({ netns: netnsPath }) }).connect(port, host) },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
      },
    );
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('no HTTP answer within 5 s')));
    req.end();
  });
}

async function retry<T>(fn: () => Promise<T>, attempts = 50): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      await sleep(100);
    }
  }
}

rootTest('two nodes, pods wired by the real CNI plugins, pod-to-pod across nodes keeps source IPs, teardown leaves nothing', async (t) => {
  if (await netnsExists('wrn-underlay')) {
    t.skip('a simulator is running on this machine (wrn-underlay exists); run `warren sim down` first');
    return;
  }
  const stateDir = await mkdtemp(`${tmpdir()}/wrn-test-`);
  const plan = planTopology(stateDir, ['t1', 't2']);
  const [n1, n2] = plan.nodes as [(typeof plan.nodes)[0], (typeof plan.nodes)[0]];
  const sandboxes: Array<[typeof n1, PodSandbox]> = [];
  const containers: RunningContainer[] = [];
  try {
    await createTopologyNetwork(systemRunner, plan);
    const server = await createPodSandbox(systemRunner, n1, { namespace: 'demo', name: 'server', uid: '1111-aaaa' });
    sandboxes.push([n1, server]);
    const client = await createPodSandbox(systemRunner, n2, { namespace: 'demo', name: 'client', uid: '2222-bbbb' });
    sandboxes.push([n2, client]);
    assert.match(server.ips[0] ?? '', /^10\.244\.1\.\d+$/, 'node t1 pods come from 10.244.1.0/24');
    assert.match(client.ips[0] ?? '', /^10\.244\.2\.\d+$/);

    containers.push(
      startContainer({
        netns: server.netns,
        command: [process.execPath, WARREN_MAIN, 'sim', 'app', 'http-echo', '--port', '8080'],
        env: { POD_NAME: 'server', POD_NAMESPACE: 'demo' },
        logFile: `${stateDir}/server.log`,
      }),
    );
    const answer = await retry(() => httpGetFrom(client.path, server.ips[0]!, 8080));
    assert.equal(answer.pod, 'server');
    assert.equal(answer.url, '/hello');
    assert.equal((answer.client as { ip: string }).ip, client.ips[0], 'the server sees the client pod IP (no NAT between nodes)');
  } finally {
    for (const c of containers) await c.stop();
    for (const [node, sb] of sandboxes) await destroyPodSandbox(systemRunner, node, sb);
    const leftoverIps = await readdir(`${n1.ipamDir}/wrn-pods`).catch(() => []);
    await destroyTopologyNetwork(systemRunner, plan);
    await rm(stateDir, { recursive: true, force: true });
    assert.deepEqual(
      leftoverIps.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
      [],
      'CNI DEL released the pod IPs',
    );
    assert.deepEqual(await listSimNetns(), [], 'no simulator netns left');
  }
});
