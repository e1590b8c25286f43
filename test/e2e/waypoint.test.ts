import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { GATEWAY_NAME_LABEL } from '../../src/gateway/constants.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { planTopology } from '../../src/sim/topology/plan.js';
import { eventually } from '../helpers/apiserver.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { rootTest } from '../helpers/root.js';
import { warren } from '../helpers/warren-cli.js';
import { ambientNamespaceWithClient } from '../helpers/mesh-pods.js';
import { connectionOutcome, echoFrom, netnsOf, readyAndEnrolled } from '../helpers/sim-pods.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const STANDIN = fileURLToPath(new URL('../helpers/waypoint-standin.js', import.meta.url));
const GATEWAYS = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways' };

const MANIFEST = `
${ambientNamespaceWithClient('shop')}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop}
spec:
  selector: {app: echo}
  ports: [{port: 9000, targetPort: 9000}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo, namespace: shop, labels: {app: echo}}
spec:
  nodeName: node-2
  containers:
  - name: echo
    image: tcp-echo
    ports: [{containerPort: 9000}]
    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
`;

interface Recorded {
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
  clientSpiffeId?: string;
  error?: string;
}

// Both data paths: the waypoint pod's agent hands the stream over on either (docs/architecture.md §13).
for (const dataplane of testDataplanes())
rootTest(`waypoint (--dataplane ${dataplane}): the controller runs it, a labelled Service's traffic reaches it with a PROXY v2 header, fails closed without it, goes direct without the label`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-waypoint-`);
  const record = `${stateDir}/waypoint-headers.jsonl`;
  try {
    const kc = await simClusterWith(stateDir, 16549, MANIFEST, dataplane);
    const kubeconfig = `${stateDir}/kubeconfig`;
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: 'shop' })).items;
    await eventually(async () => (await pods()).length === 2 && (await pods()).every(readyAndEnrolled), 'client and echo ready and enrolled', 90_000);
    const client = (await pods()).find((p) => p.metadata!.name === 'client')!;
    const clientNs = netnsOf(client);
    const vip = (await core.readNamespacedService({ namespace: 'shop', name: 'echo' })).spec!.clusterIP!;
    const gateway = async () => (await custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint' })) as { status?: { conditions?: Array<{ type: string; status: string; reason: string }>; addresses?: Array<{ value: string }> } };
    const programmed = async (): Promise<string | undefined> => (await gateway()).status?.conditions?.find((c) => c.type === 'Programmed')?.status;
    const headers = async (): Promise<Recorded[]> => (await readFile(record, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Recorded);
    const echo = async (): Promise<boolean> => {
      const payload = randomBytes(4096);
      const back = await echoFrom(clientNs, vip, 9000, payload).catch(() => Buffer.alloc(0));
      return back.equals(payload);
    };

    await t.test('warren waypoint apply: the controller makes a Deployment, Service and ServiceAccount owned by the Gateway', async () => {
      const applied = await warren('waypoint', 'apply', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.equal(applied.exitCode, 0, applied.stderr);
      assert.match(applied.stdout, /waypoint shop\/waypoint applied \(for service traffic\)/);
      const gw = (await custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'shop', name: 'waypoint' })) as { metadata: { uid: string } };
      // The controller makes the ServiceAccount, the Deployment, then the Service: wait for the last one.
      await eventually(async () => (await core.listNamespacedService({ namespace: 'shop' })).items.some((s) => s.metadata?.name === 'waypoint'), 'the waypoint Service', 20_000);
      const deployment = await apps.readNamespacedDeployment({ namespace: 'shop', name: 'waypoint' });
      const service = await core.readNamespacedService({ namespace: 'shop', name: 'waypoint' });
      const account = await core.readNamespacedServiceAccount({ namespace: 'shop', name: 'waypoint' });
      for (const o of [deployment, service, account]) assert.equal(o.metadata?.ownerReferences?.[0]?.uid, gw.metadata.uid, `${o.kind ?? 'object'} owned by the Gateway`);
      assert.deepEqual(service.spec?.ports?.map((p) => p.port), [15008, 15021]);
      const list = await warren('waypoint', 'list', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.match(list.stdout, /shop\s+waypoint\s+service/);
      // The stand-in for `warren waypoint-proxy` (test/helpers/waypoint-standin.ts): the controller leaves an edited Deployment alone until what it generates changes.
      await apps.patchNamespacedDeployment(
        { namespace: 'shop', name: 'waypoint', body: { spec: { template: { spec: { containers: [{ name: 'waypoint', image: 'standin', command: [process.execPath, STANDIN, record] }] } } } } },
        mergePatch,
      );
      await eventually(async () => (await programmed()) === 'True', 'the Gateway Programmed', 60_000);
      assert.match((await gateway()).status?.addresses?.[0]?.value ?? '', /^10\.96\./, 'status.addresses holds the Service address');
      const status = await warren('waypoint', 'status', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.equal(status.exitCode, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /Programmed\s+True\s+Programmed/);
    });

    await t.test('a request to the labelled Service arrives at the waypoint on :15088 with the client address, the VIP:port and the client SPIFFE ID, and reaches the destination through it', async () => {
      assert.ok(await echo(), 'before the label: direct');
      assert.deepEqual(await headers(), [], 'nothing went through the waypoint yet');
      await core.patchNamespacedService({ namespace: 'shop', name: 'echo', body: { metadata: { labels: { 'warren.io/use-waypoint': 'waypoint' } } } }, mergePatch);
      await eventually(async () => (await echo()) && (await headers()).length > 0, 'traffic through the waypoint', 20_000);
      const h = (await headers()).at(-1)!;
      assert.equal(h.source?.address, client.status!.podIP);
      assert.ok((h.source?.port ?? 0) > 1024, "the client's own port");
      assert.deepEqual(h.destination, { address: vip, port: 9000 });
      assert.equal(h.clientSpiffeId, 'spiffe://cluster.local/ns/shop/sa/client');
    });

    await t.test("the waypoint's own upstream reaches the destination with the waypoint's identity: an ALLOW for that identity alone lets it through, the client's direct traffic not", async () => {
      await custom.createNamespacedCustomObject({
        group: 'security.warren.io',
        version: 'v1',
        plural: 'authorizationpolicies',
        namespace: 'shop',
        body: { apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'only-waypoint', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'echo' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/waypoint'] } }] }] } },
      });
      const before = (await headers()).length;
      await eventually(async () => await echo(), 'through the waypoint under the policy', 20_000);
      assert.ok((await headers()).length > before);
      await core.patchNamespacedService({ namespace: 'shop', name: 'echo', body: { metadata: { labels: { 'warren.io/use-waypoint': null } } } }, mergePatch);
      await eventually(async () => (await connectionOutcome(clientNs, vip, 9000)) === 'reset', 'the client\'s direct connection denied by the policy', 20_000);
      await custom.deleteNamespacedCustomObject({ group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies', namespace: 'shop', name: 'only-waypoint' });
      await eventually(async () => await echo(), 'direct again without the policy', 20_000);
    });

    await t.test('the waypoint gone: the client is reset, never sent around it; the Gateway says Programmed False and a Warning Event says why', async () => {
      const direct = (await headers()).length;
      await core.patchNamespacedService({ namespace: 'shop', name: 'echo', body: { metadata: { labels: { 'warren.io/use-waypoint': 'waypoint' } } } }, mergePatch);
      // An echo alone also succeeds direct, before the agent has seen the label: wait for the waypoint to record one.
      await eventually(async () => (await echo()) && (await headers()).length > direct, 'through the waypoint again', 20_000);
      await apps.patchNamespacedDeployment({ namespace: 'shop', name: 'waypoint', body: { spec: { replicas: 0 } } }, mergePatch);
      await eventually(async () => (await connectionOutcome(clientNs, vip, 9000)) === 'reset', 'connections refused while no waypoint pod is ready', 30_000);
      const through = (await headers()).length;
      for (let i = 0; i < 5; i++) {
        const outcome = await connectionOutcome(clientNs, vip, 9000);
        if (outcome === 'reset') continue;
        // What the agents decided for the VIP, for the failure to say why.
        const lines = (await Promise.all(planTopology(stateDir, ['node-1', 'node-2']).nodes.map((n) => readFile(agentPaths(n).log, 'utf8').catch(() => ''))))
          .join('\n')
          .split('\n')
          .filter((l) => l.includes(vip) || l.includes('waypoint'))
          .slice(-8);
        const waypointPods = (await pods()).filter((p) => p.metadata?.labels?.[GATEWAY_NAME_LABEL] === 'waypoint').map((p) => `${p.metadata?.name}:${p.status?.phase}`);
        assert.fail(`connection ${i + 1} of 5 after the first refusal: ${outcome}; waypoint pods [${waypointPods.join(', ')}]; the waypoint recorded ${(await headers()).length - through} more; agents' last lines on ${vip} or the waypoint:\n${lines.join('\n')}`);
      }
      assert.equal((await headers()).length, through, 'nothing reached the waypoint');
      await eventually(async () => (await programmed()) === 'False', 'Programmed False', 30_000);
      await eventually(
        async () => (await core.listNamespacedEvent({ namespace: 'shop' })).items.some((e) => e.reason === 'WaypointNotReady' && e.involvedObject.kind === 'Gateway' && e.involvedObject.name === 'waypoint' && e.type === 'Warning'),
        'a WaypointNotReady Warning Event on the Gateway',
        20_000,
      );
      const agents = await warren('status', '--state-dir', stateDir);
      assert.match(agents.stdout, /waypoint shop\/waypoint of Service shop\/echo: no ready waypoint pod: its traffic is refused/, 'warren status shows it');
      const status = await warren('waypoint', 'status', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.equal(status.exitCode, 1);
      assert.match(status.stdout, /Programmed\s+False\s+Pending\s+no waypoint pod is ready/);
      await apps.patchNamespacedDeployment({ namespace: 'shop', name: 'waypoint', body: { spec: { replicas: 1 } } }, mergePatch);
      await eventually(async () => (await programmed()) === 'True', 'Programmed again', 60_000);
      await eventually(async () => await echo(), 'through the waypoint once it is back', 20_000);
    });

    await t.test('the label removed: traffic goes direct again, the waypoint sees nothing', async () => {
      await core.patchNamespacedService({ namespace: 'shop', name: 'echo', body: { metadata: { labels: { 'warren.io/use-waypoint': null } } } }, mergePatch);
      await eventually(async () => {
        const n = (await headers()).length;
        return (await echo()) && (await headers()).length === n;
      }, 'direct traffic', 20_000);
      const n = (await headers()).length;
      for (let i = 0; i < 5; i++) assert.ok(await echo());
      assert.equal((await headers()).length, n);
    });

    await t.test('a Service naming a waypoint that does not exist: refused, with a WaypointMissing Event on the Service', async () => {
      await core.patchNamespacedService({ namespace: 'shop', name: 'echo', body: { metadata: { labels: { 'warren.io/use-waypoint': 'nope' } } } }, mergePatch);
      await eventually(async () => (await connectionOutcome(clientNs, vip, 9000)) === 'reset', 'refused', 20_000);
      await eventually(
        async () => (await core.listNamespacedEvent({ namespace: 'shop' })).items.some((e) => e.reason === 'WaypointMissing' && e.involvedObject.kind === 'Service' && e.involvedObject.name === 'echo'),
        'a WaypointMissing Event on the Service',
        20_000,
      );
      assert.match((await warren('status', '--state-dir', stateDir)).stdout, /waypoint shop\/nope of Service shop\/echo: waypoint shop\/nope does not exist/);
    });

    await t.test('warren waypoint delete: the Gateway and, with it, what ran it are gone', async () => {
      const deleted = await warren('waypoint', 'delete', 'waypoint', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.equal(deleted.exitCode, 0, deleted.stderr);
      await eventually(async () => !(await apps.listNamespacedDeployment({ namespace: 'shop' })).items.some((d) => d.metadata?.name === 'waypoint'), 'the Deployment garbage-collected', 20_000);
      const again = await warren('waypoint', 'delete', 'waypoint', '-n', 'shop', '--kubeconfig', kubeconfig);
      assert.equal(again.exitCode, 1);
      assert.match(again.stderr, /no waypoint shop\/waypoint/);
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
