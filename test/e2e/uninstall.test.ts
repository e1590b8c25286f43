import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { PORTS } from '../../src/redirect/constants.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { httpGetFromPod } from '../../src/sim/client/pod-http.js';
import { listSimNetns } from '../../src/sim/topology/network.js';
import { UNDERLAY, planTopology } from '../../src/sim/topology/plan.js';
import { eventually } from '../helpers/apiserver.js';
import { assertNoWarrenRules, snapshotRules } from '../helpers/pod-rules.js';
import { clientEchoWebPods } from '../helpers/mesh-pods.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { rootTest } from '../helpers/root.js';
import { echoFrom, netnsOf } from '../helpers/sim-pods.js';
import { warren } from '../helpers/warren-cli.js';
import { captureTcp } from '../helpers/wire-capture.js';

const NS = 'mesh';
const NODES = ['node-1', 'node-2'];

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: security.warren.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ${NS}}
spec: {mtls: {mode: PERMISSIVE}}
---
${clientEchoWebPods(NS)}
`;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const pids = async (netns: string): Promise<string> => (await execa('ip', ['netns', 'pids', netns])).stdout.split('\n').sort().join(' ');
/** Ports with a listening TCP socket in a netns (the agent's proxy sockets live in the pod's). */
const listening = async (netns: string): Promise<number[]> => {
  const lines = (await execa('ip', ['netns', 'exec', netns, 'ss', '-Htln'])).stdout.split('\n');
  const ports = lines.map((l) => Number(/:(\d+)$/.exec(l.trim().split(/\s+/)[3] ?? '')?.[1]));
  return [...new Set(ports.filter((p) => Number.isInteger(p)))].sort((a, b) => a - b);
};
const PROXY_PORTS = [15001, 15006, 15008];

for (const dataplane of testDataplanes())
rootTest(`uninstall (--dataplane ${dataplane}): after \`warren sim mesh uninstall\` no warren rule, CNI entry, plugin, socket, annotation, Secret, ConfigMap, CRD or process remains, and traffic flows directly`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-uninstall-`);
  try {
    const kc = await simClusterWith(stateDir, 16547, MANIFEST, dataplane);
    const core = kc.makeApiClient(CoreV1Api);
    const plan = planTopology(stateDir, NODES);
    const meshPods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS })).items;
    await eventually(
      async () => (await meshPods()).every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && p.metadata?.annotations?.['warren.io/redirection'] === 'enabled'),
      'pods ready and enrolled',
      60_000,
    );
    const pod = new Map((await meshPods()).map((p) => [p.metadata!.name!, p]));
    const [client, echo, web] = [pod.get('client')!, pod.get('echo')!, pod.get('web')!];
    const processesBefore = new Map<string, string>();
    for (const p of pod.values()) processesBefore.set(netnsOf(p), await pids(netnsOf(p)));

    /** Sends a unique marker client → echo across the nodes; returns whether it crossed the underlay in plaintext. */
    const markerInClear = async (file: string): Promise<boolean> => {
      const marker = `WARREN-MARKER-${randomBytes(8).toString('hex')}`;
      const wire = await captureTcp(UNDERLAY.netns, UNDERLAY.bridge, `${stateDir}/${file}`, async () => {
        assert.equal((await echoFrom(netnsOf(client), echo.status!.podIP!, 9000, Buffer.from(marker))).toString(), marker);
        // Stopped once the capture shows the exchange: the marker in the clear, or the echo's answer
        // coming back through a tunnel (bytes from :15008, the last packet of a tunneled exchange).
      }, (segments) => segments.some((s) => s.payload.includes(marker) || (s.srcPort === PORTS.hbone && s.payload.length >= marker.length)));
      return wire.includes(marker);
    };

    await t.test('before: enrolled pods have the agent listening in their netns and talk over mTLS', async () => {
      for (const p of pod.values()) assert.deepEqual((await listening(netnsOf(p))).filter((port) => PROXY_PORTS.includes(port)), PROXY_PORTS, `${p.metadata!.name}`);
      assert.equal(await markerInClear('before.pcap'), false, 'the app bytes are tunneled, not in the clear');
    });

    await t.test('warren sim mesh uninstall takes warren off the cluster', async () => {
      const res = await warren('sim', 'mesh', 'uninstall', '--state-dir', stateDir);
      assert.equal(res.exitCode, 0, res.stdout + res.stderr);
      for (const node of NODES) assert.match(res.stdout, new RegExp(`${node}: warren node --uninstall`));
      assert.match(res.stdout, /mesh uninstalled/);
    });

    await t.test('no warren table, chain or policy route in any pod, node or underlay netns (nft and iptables)', async () => {
      const all = await listSimNetns();
      assert.ok(all.length >= 6, `underlay, 2 nodes, 3 pods: ${all.join(', ')}`);
      for (const netns of all) {
        assertNoWarrenRules(await snapshotRules(netns), netns);
      }
    });

    await t.test('no CNI entry, plugin binary, socket or agent state on any node', async () => {
      for (const node of plan.nodes) {
        for (const file of readdirSync(node.cniConfDir)) {
          const list = JSON.parse(readFileSync(`${node.cniConfDir}/${file}`, 'utf8')) as { plugins: Array<{ type: string }> };
          assert.deepEqual(list.plugins.map((p) => p.type), ['bridge'], `${node.name}: ${file} holds the primary CNI only`);
        }
        assert.ok(readdirSync(node.cniConfDir).length > 0, "the primary CNI's conflist stays");
        assert.ok(!existsSync(`${node.cniBinDir}/warren-cni`), `${node.name}: plugin binary`);
        assert.ok(existsSync(`${node.cniBinDir}/bridge`), `${node.name}: the other plugins stay`);
        assert.ok(!existsSync(agentPaths(node).socket), `${node.name}: CNI socket`);
        assert.ok(!existsSync(agentPaths(node).dir), `${node.name}: agent state dir`);
      }
    });

    await t.test('no warren annotation on any pod; no Secret, trust bundle ConfigMap, CRD, policy, namespace or process', async () => {
      for (const p of (await core.listPodForAllNamespaces()).items) {
        const keys = Object.keys(p.metadata?.annotations ?? {}).filter((k) => k.startsWith('warren.io/'));
        assert.deepEqual(keys, [], `${p.metadata!.namespace}/${p.metadata!.name}`);
      }
      const secrets = (await core.listSecretForAllNamespaces()).items.map((s) => `${s.metadata!.namespace}/${s.metadata!.name}`);
      assert.ok(!secrets.includes('warren-system/warren-ca'), secrets.join(', '));
      const bundles = (await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=warren-ca-root' })).items;
      assert.deepEqual(bundles.map((c) => c.metadata!.namespace), []);
      const crds = (await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition()).items.map((c) => c.metadata!.name!);
      assert.deepEqual(crds.filter((n) => n.endsWith('.warren.io')), []);
      await assert.rejects(
        kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: 'security.warren.io', version: 'v1', namespace: NS, plural: 'peerauthentications' }),
        'the policies are gone with their CRD',
      );
      assert.ok(!(await core.listNamespace()).items.some((n) => n.metadata?.name === 'warren-system'));
      const left = await execa('pgrep', ['-af', `main\\.js (node|ca) .*--kubeconfig ${stateDir}/kubeconfig\\.cluster`], { reject: false });
      assert.equal(left.stdout, '', 'no warren node or warren ca process of this cluster');
    });

    await t.test('traffic flows directly: nothing listens for the mesh, bytes arrive both ways, the server sees the client pod, plaintext on the wire', async () => {
      for (const p of pod.values()) {
        assert.deepEqual((await listening(netnsOf(p))).filter((port) => PROXY_PORTS.includes(port)), [], `${p.metadata!.name}: no proxy socket`);
        assert.equal(await pids(netnsOf(p)), processesBefore.get(netnsOf(p)), `${p.metadata!.name} kept its processes`);
      }
      const payload = randomBytes(1 << 20);
      assert.equal(sha(await echoFrom(netnsOf(client), echo.status!.podIP!, 9000, payload)), sha(payload));
      const reply = await httpGetFromPod(netnsOf(client), web.status!.podIP!, 8080);
      assert.equal(reply.pod, 'web');
      assert.equal(reply.client.ip, client.status!.podIP);
      assert.equal(await markerInClear('after.pcap'), true, 'no tunnel: the app bytes cross the underlay as sent');
    });

    await t.test('warren sim mesh install puts it back: pods enrolled again, traffic tunneled again', async () => {
      const res = await warren('sim', 'mesh', 'install', '--state-dir', stateDir);
      assert.equal(res.exitCode, 0, res.stdout + res.stderr);
      await eventually(async () => (await meshPods()).every((p) => p.metadata?.annotations?.['warren.io/redirection'] === 'enabled'), 'pods enrolled again', 30_000);
      const reply = await httpGetFromPod(netnsOf(client), web.status!.podIP!, 8080);
      assert.equal(reply.client.ip, client.status!.podIP);
      assert.equal(await markerInClear('reinstalled.pcap'), false);
    });
  } finally {
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
  }
});
