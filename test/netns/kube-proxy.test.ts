/**
 * The simulator's kube-proxy on the real kernel. A "node" netns (the
 * topology's bridge netns, given the pods' gateway address) with three pods
 * on its bridge and a "remote" netns behind an uplink (another node's pod,
 * as far as routing goes):
 *
 *   remote 10.78.0.2 ── 10.78.0.1 node br0 10.77.0.1 ─┬─ p0 10.77.0.10 :8080
 *                                                      ├─ p1 10.77.0.11 :8080
 *                                                      └─ p2 10.77.0.12 (client)
 *
 * ClusterIP 10.96.0.50:80 → p0/p1 :8080; 10.96.0.51:80 has no endpoints.
 * Each server answers "<name> <peer address>" so the test sees both which
 * backend was chosen and whether the node masqueraded the client.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { execa } from 'execa';
import { rootTest } from '../helpers/root.js';
import { createTopology, inNetns, ip, type TestPod } from '../helpers/netns.js';
import { createListener, createSocket } from '../../src/native/netns-socket.js';
import { systemRunner } from '../../src/redirect/runner.js';
import { applyKubeProxyRules, listKubeProxyTable, removeKubeProxyRules } from '../../src/sim/kube-proxy/apply.js';
import { KUBE_PROXY_TABLE, type KubeProxyInput } from '../../src/sim/kube-proxy/service-rules.js';

const NODE_POD_IP = '10.77.0.1';
const POD_CIDR = '10.77.0.0/24';
const NODE_UPLINK_IP = '10.78.0.1';
const REMOTE_IP = '10.78.0.2';
const VIP = '10.96.0.50';
const VIP_NO_ENDPOINTS = '10.96.0.51';
const CONNECTIONS = 40;

/** A server in the pod's netns answering with its name and the address the client appears to have. */
async function startNamedServer(pod: TestPod, name: string, port: number): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on('error', () => s.destroy());
    s.end(`${name} ${s.remoteAddress ?? '?'}\n`);
  });
  await new Promise<void>((resolve) => server.listen({ fd: createListener({ netns: pod.path, port, family: 4 }) }, resolve));
  return server;
}

/** Connects from inside `netns` (a netns file) and returns the server's one-line answer. */
function ask(netns: string, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new net.Socket({ fd: createSocket({ netns, family: 4 }) });
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString().trim());
    });
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer from ${host}:${port} within 5 s`)));
    socket.connect(port, host);
  });
}

/** `count` sequential connections: which backends answered, and the client addresses they saw. */
async function spread(netns: string, count: number): Promise<{ backends: Map<string, number>; peers: Set<string> }> {
  const backends = new Map<string, number>();
  const peers = new Set<string>();
  for (let i = 0; i < count; i++) {
    const [name = '', peer = ''] = (await ask(netns, VIP, 80)).split(' ');
    backends.set(name, (backends.get(name) ?? 0) + 1);
    peers.add(peer);
  }
  return { backends, peers };
}

async function refusedCode(netns: string, host: string, port: number): Promise<string | undefined> {
  try {
    await ask(netns, host, port);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

const input = (addresses: string[]): KubeProxyInput => ({
  podCidr: POD_CIDR,
  services: [
    { namespace: 'default', name: 'web', clusterIP: VIP, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] },
    { namespace: 'default', name: 'idle', clusterIP: VIP_NO_ENDPOINTS, ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] },
  ],
  endpoints: [{ namespace: 'default', service: 'web', portName: 'http', port: 8080, addresses }],
});

// br_netfilter off is the case the masquerade exists for (the backend's reply
// is bridged straight to its neighbour, past the node's conntrack); on is a
// new netns's default here, so the simulator's nodes run that way.
for (const bridgeNetfilter of [false, true]) {
  rootTest(`kube-proxy (bridge-nf-call-iptables=${bridgeNetfilter ? 1 : 0}): ClusterIP spread, hairpin, reject without endpoints, idempotent apply, removal`, async (t) => {
    const topo = await createTopology(3);
    const id = topo.bridgeNetns.split('-')[1] ?? 'x';
    const remoteNetns = `wrt-${id}-rm`;
    const remotePath = `/var/run/netns/${remoteNetns}`;
    const node = topo.bridgeNetns;
    const nodePath = `/var/run/netns/${node}`;
    const servers: net.Server[] = [];
    let remoteMade = false;
    try {
      const [p0, p1, p2] = topo.pods as [TestPod, TestPod, TestPod];

      // The node: gateway of its pods, router to the remote side.
      await inNetns(node, 'ip', ['addr', 'add', `${NODE_POD_IP}/24`, 'dev', 'br0']);
      await inNetns(node, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) {
        // Per netns on this kernel (≥ 5.3): only the test's node is affected.
        await inNetns(node, 'sysctl', ['-q', '-w', `net.bridge.bridge-nf-call-iptables=${bridgeNetfilter ? 1 : 0}`]);
      } else if (bridgeNetfilter) {
        t.skip('no br_netfilter on this kernel: the bridge never calls the IP hooks');
        return;
      }
      for (const pod of [p0, p1, p2]) await inNetns(pod.netns, 'ip', ['route', 'add', 'default', 'via', NODE_POD_IP]);
      // As the sim's bridge CNI config (hairpinMode): with br_netfilter a pod
      // reaching itself through its ClusterIP is DNATed while being bridged
      // and must leave through the port it came in on.
      const ports = (await inNetns(node, 'ip', ['-o', 'link', 'show', 'master', 'br0']))
        .split('\n')
        .map((l) => /^\d+:\s+([^@:\s]+)/.exec(l)?.[1])
        .filter((n): n is string => n !== undefined);
      assert.equal(ports.length, 3);
      for (const port of ports) await inNetns(node, 'ip', ['link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', 'on']);

      await ip('netns', 'add', remoteNetns);
      remoteMade = true;
      await inNetns(node, 'ip', ['link', 'add', `wrt${id}up`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', remoteNetns]);
      await inNetns(node, 'ip', ['addr', 'add', `${NODE_UPLINK_IP}/24`, 'dev', `wrt${id}up`]);
      await inNetns(node, 'ip', ['link', 'set', `wrt${id}up`, 'up']);
      // Unmatched ClusterIP traffic is forwarded (as on a node with a default
      // route), so it meets the filter-forward reject; the remote end does not
      // forward, so nothing leaves the test's namespaces.
      await inNetns(node, 'ip', ['route', 'add', 'default', 'via', REMOTE_IP]);
      await inNetns(remoteNetns, 'ip', ['addr', 'add', `${REMOTE_IP}/24`, 'dev', 'eth0']);
      await inNetns(remoteNetns, 'ip', ['link', 'set', 'eth0', 'up']);
      await inNetns(remoteNetns, 'ip', ['link', 'set', 'lo', 'up']);
      await inNetns(remoteNetns, 'ip', ['route', 'add', '10.96.0.0/16', 'via', NODE_UPLINK_IP]);
      await inNetns(remoteNetns, 'ip', ['route', 'add', POD_CIDR, 'via', NODE_UPLINK_IP]);

      servers.push(await startNamedServer(p0, 'p0', 8080), await startNamedServer(p1, 'p1', 8080));

      // Apply twice: the second run replaces the table with an identical one.
      await applyKubeProxyRules(systemRunner, nodePath, input([p0.ipv4, p1.ipv4]));
      const first = await listKubeProxyTable(systemRunner, nodePath);
      assert.ok(first?.includes(`table ip ${KUBE_PROXY_TABLE}`), 'the table exists after apply');
      await applyKubeProxyRules(systemRunner, nodePath, input([p0.ipv4, p1.ipv4]));
      assert.equal(await listKubeProxyTable(systemRunner, nodePath), first, 'applying again changes nothing');

      // From another node's side: both backends, client address preserved.
      const remote = await spread(remotePath, CONNECTIONS);
      assert.deepEqual([...remote.backends.keys()].sort(), ['p0', 'p1'], `both backends answered the remote client: ${[...remote.backends]}`);
      assert.deepEqual([...remote.peers], [REMOTE_IP], 'traffic from outside the pod CIDR is not masqueraded');

      // Hairpin: a bridge neighbour of both backends.
      const neighbour = await spread(p2.path, CONNECTIONS);
      assert.deepEqual([...neighbour.backends.keys()].sort(), ['p0', 'p1'], `both backends answered p2: ${[...neighbour.backends]}`);
      assert.deepEqual([...neighbour.peers], [NODE_POD_IP], 'pod → ClusterIP → pod on the same bridge is masqueraded to the node');

      // A backend reaching its own service, itself included.
      const self = await spread(p0.path, CONNECTIONS);
      assert.deepEqual([...self.backends.keys()].sort(), ['p0', 'p1'], `both backends answered p0: ${[...self.backends]}`);
      assert.deepEqual([...self.peers], [NODE_POD_IP]);

      // The node's own processes (output hook).
      const local = await spread(nodePath, CONNECTIONS);
      assert.deepEqual([...local.backends.keys()].sort(), ['p0', 'p1'], `both backends answered the node: ${[...local.backends]}`);
      assert.deepEqual([...local.peers], [NODE_UPLINK_IP]);

      // No endpoints: refused at once, forwarded or local, instead of hanging.
      assert.equal(await refusedCode(p2.path, VIP_NO_ENDPOINTS, 80), 'ECONNREFUSED');
      assert.equal(await refusedCode(remotePath, VIP_NO_ENDPOINTS, 80), 'ECONNREFUSED');
      assert.equal(await refusedCode(nodePath, VIP_NO_ENDPOINTS, 80), 'ECONNREFUSED');

      // An endpoint change replaces the table: p1 gone, p0 takes everything.
      await applyKubeProxyRules(systemRunner, nodePath, input([p0.ipv4]));
      const after = await spread(p2.path, 10);
      assert.deepEqual([...after.backends], [['p0', 10]]);

      // Removal: the table is gone (twice is fine), nothing else was touched.
      await removeKubeProxyRules(systemRunner, nodePath);
      await removeKubeProxyRules(systemRunner, nodePath);
      assert.equal(await listKubeProxyTable(systemRunner, nodePath), undefined);
      const listed = await execa('ip', ['netns', 'exec', node, 'nft', 'list', 'table', 'ip', KUBE_PROXY_TABLE], { reject: false });
      assert.notEqual(listed.exitCode, 0, '`nft list table ip wrn-kube-proxy` fails after removal');
      assert.equal((await inNetns(node, 'nft', ['list', 'ruleset'])).trim(), '', 'the node ruleset is empty again');
      // Pods still reach each other directly.
      assert.equal(await ask(p2.path, p1.ipv4, 8080), `p1 ${p2.ipv4}`);
    } finally {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      if (remoteMade) await execa('ip', ['netns', 'del', remoteNetns], { reject: false });
      await topo.destroy();
    }
  });
}
