/**
 * The waypoint hand-off (docs/architecture.md §13) on both data paths, on the real
 * kernel: this test process is the waypoint pod's node agent. An HBONE CONNECT
 * to a Service VIP the pod's waypoint serves arrives at 127.0.0.1:15088 in the
 * pod's netns with a PROXY v2 header (client address and port from `Forwarded`,
 * the VIP:port, the client's SPIFFE ID) and carries bytes both ways; a CONNECT
 * to a VIP the waypoint does not serve is refused (400), never relayed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { KubernetesObject, V1Pod, V1Service } from '@kubernetes/client-node';
import net from 'node:net';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { formatSpiffeId } from '../../src/identity/spiffe.js';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { buildWaypointIndex } from '../../src/k8s/waypoint-index.js';
import { createListener } from '../../src/native/netns-socket.js';
import type { DataPlane } from '../../src/tunnel/dataplane.js';
import { HboneError, HbonePool } from '../../src/tunnel/hbone-pool.js';
import { DEFAULT_HBONE_LIMITS } from '../../src/tunnel/hbone-limits.js';
import { NativeHub } from '../../src/tunnel/native-hub.js';
import { NativePodProxy } from '../../src/tunnel/native-pod-proxy.js';
import { PodProxy } from '../../src/tunnel/pod-proxy.js';
import type { ProxyV2Header } from '../../src/waypoint/proxy-protocol.js';
import { proxyV2Echo } from '../helpers/proxy-v2-echo.js';
import { createTopology, type TestPod } from '../helpers/netns.js';
import { rootTest } from '../helpers/root.js';
import { proxyOptions, testDataPlane } from '../helpers/test-dataplane.js';

const TD = 'cluster.local';
const idOf = (sa: string): SpiffeId => ({ trustDomain: TD, namespace: 'shop', serviceAccount: sa });
const GATEWAY_LABELS = { 'gateway.networking.k8s.io/gateway-name': 'wp' };
const SERVED = { ip: '10.96.0.10', port: 80 };
const NOT_SERVED = { ip: '10.96.0.11', port: 80 };

/** The waypoint pod (label and service account of Gateway shop/wp), a Service bound to it, one without a waypoint. */
function waypointWorld(w: TestPod): Pick<DataPlane, 'index' | 'waypoints'> {
  const pods: V1Pod[] = [
    {
      metadata: { name: 'wp', namespace: 'shop', uid: 'uid-wp', labels: GATEWAY_LABELS, annotations: { 'warren.io/redirection': 'enabled' } },
      spec: { containers: [], nodeName: 'node-1', serviceAccountName: 'wp' },
      status: { podIP: w.ipv4, podIPs: [{ ip: w.ipv4 }, { ip: w.ipv6 }], phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    },
  ];
  const service = (name: string, vip: string, labels: Record<string, string>): V1Service => ({ metadata: { name, namespace: 'shop', labels }, spec: { clusterIP: vip, clusterIPs: [vip], ports: [{ port: 80, protocol: 'TCP' }] } });
  const services = [service('web', SERVED.ip, { 'warren.io/use-waypoint': 'wp' }), service('plain', NOT_SERVED.ip, {})];
  const gateways: KubernetesObject[] = [{ metadata: { name: 'wp', namespace: 'shop' }, spec: { gatewayClassName: 'warren-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } } as KubernetesObject];
  const index = buildClusterIndex(pods, services, []);
  const waypoints = buildWaypointIndex({ namespaces: [{ metadata: { name: 'shop' } }], services, pods, gateways });
  return { index: () => index, waypoints: () => waypoints };
}

/** The waypoint process's stand-in on 127.0.0.1:15088 in the pod: records each PROXY v2 header, then echoes. */
async function waypointListener(w: TestPod): Promise<{ server: net.Server; headers: ProxyV2Header[] }> {
  const headers: ProxyV2Header[] = [];
  const server = net.createServer({ allowHalfOpen: true }, proxyV2Echo(headers));
  await new Promise<void>((resolve) => server.listen({ fd: createListener({ netns: w.path, family: 4, address: '127.0.0.1', port: 15088 }) }, resolve));
  return { server, headers };
}

for (const mode of ['node', 'native'] as const)
rootTest(`--dataplane ${mode}: a CONNECT to a VIP the pod's waypoint serves reaches 127.0.0.1:15088 with the PROXY v2 header and carries bytes both ways; one to a VIP it does not serve is refused`, async () => {
  const topo = await createTopology(2);
  const [w, c] = topo.pods as [TestPod, TestPod];
  const closers: Array<() => unknown> = [];
  try {
    const base = await testDataPlane(TD, 'shop', [{ name: 'wp', pod: w, enrolled: true }, { name: 'client', pod: c, enrolled: true }]);
    const dataplane: DataPlane = { ...base.dataplane, ...waypointWorld(w) };
    const hub = mode === 'native' ? new NativeHub(dataplane, 2) : undefined;
    if (hub !== undefined) closers.push(() => hub.stop());
    const options = { ...proxyOptions(dataplane, { pod: 'shop/wp', namespace: 'shop', identity: idOf('wp'), netns: w }), labels: () => GATEWAY_LABELS };
    const proxy = hub === undefined ? await PodProxy.start(options) : await NativePodProxy.start(options, hub);
    closers.push(() => proxy.close(0));
    const waypoint = await waypointListener(w);
    closers.push(() => waypoint.server.close());
    // the client pod's agent, as its waypoint-outbound path sends it
    const pool = new HbonePool({ netns: c.path, certificate: () => base.certs.get('client'), bundle: base.bundle, trustDomain: TD, limits: DEFAULT_HBONE_LIMITS });
    closers.push(() => pool.close());

    const stream = await pool.open(w.ipv4, idOf('wp'), SERVED, { forwarded: `for="${c.ipv4}:40123"` });
    const payload = randomBytes(64 * 1024 + 5);
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.once('end', resolve);
      stream.once('error', reject);
    });
    stream.end(payload);
    await ended;
    assert.ok(Buffer.concat(chunks).equals(payload), 'the bytes came back through the waypoint whole');
    assert.deepEqual(waypoint.headers, [{ source: { address: c.ipv4, port: 40123 }, destination: { address: SERVED.ip, port: SERVED.port }, clientSpiffeId: formatSpiffeId(idOf('client')) }]);

    const refused = await pool.open(w.ipv4, idOf('wp'), NOT_SERVED).then(
      (s) => {
        s.close();
        return 200;
      },
      (err: HboneError) => err.status,
    );
    assert.equal(refused, 400, 'a VIP this waypoint does not serve is not relayed');
    assert.equal(waypoint.headers.length, 1, 'the waypoint saw nothing of it');
  } finally {
    for (const close of closers.reverse()) await close();
    await topo.destroy();
  }
});
