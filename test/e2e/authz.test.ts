import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { eventually } from '../helpers/apiserver.js';
import { simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { rootTest } from '../helpers/root.js';
import { warren } from '../helpers/warren-cli.js';
import { echoFrom, netnsOf } from '../helpers/sim-pods.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const GROUP = { group: 'security.warren.io', version: 'v1', plural: 'authorizationpolicies' };

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: foo, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: bar, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: v1
kind: Pod
metadata: {name: tcp-echo, namespace: foo, labels: {app: tcp-echo}}
spec:
  nodeName: node-2
  containers:
  - {name: echo, image: tcp-echo, ports: [{containerPort: 9000}], readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {name: sleep, namespace: bar}
spec:
  nodeName: node-1
  serviceAccountName: sleep
  containers: [{name: c, image: curlimages/curl, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata: {name: sleep, namespace: legacy}
spec:
  nodeName: node-1
  containers: [{name: c, image: curlimages/curl, command: [sleep, infinity]}]
`;

// Istio's documentation examples (security/authorization), only apiVersion and names adapted.
const ISTIO_EXAMPLES: Record<string, object> = {
  'allow-nothing': { metadata: { name: 'allow-nothing', namespace: 'foo' }, spec: {} },
  'deny-all': { metadata: { name: 'deny-all', namespace: 'warren-system' }, spec: { action: 'DENY', rules: [{}] } },
  'allow-from-bar': { metadata: { name: 'allow-from-bar', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['bar'] } }] }] } },
  'tcp-policy': {
    metadata: { name: 'tcp-policy', namespace: 'foo' },
    spec: { selector: { matchLabels: { app: 'tcp-echo' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/bar/sa/sleep'] } }], to: [{ operation: { ports: ['9001'] } }] }] },
  },
  'deny-ip': { metadata: { name: 'deny-ip', namespace: 'foo' }, spec: { selector: { matchLabels: { app: 'tcp-echo' } }, action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['LEGACY_IP'] } }] }] } },
  'when-namespace': { metadata: { name: 'when-namespace', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ when: [{ key: 'source.namespace', values: ['bar'] }] }] } },
  'deny-locked': { metadata: { name: 'deny-locked', namespace: 'foo' }, spec: { selector: { matchLabels: { locked: 'yes' } }, action: 'DENY', rules: [{}] } },
  'http-get-only': { metadata: { name: 'http-get-only', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['bar'] } }], to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }] }] } },
};

for (const dataplane of testDataplanes())
rootTest(`AuthorizationPolicy at L4 (--dataplane ${dataplane}): Istio examples allow and deny on the simulator; live connections closed on a new DENY`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-authz-`);
  try {
    const kc = await simClusterWith(stateDir, 16546, MANIFEST, dataplane);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const pods = async (): Promise<V1Pod[]> => (await Promise.all(['foo', 'bar', 'legacy'].map((namespace) => core.listNamespacedPod({ namespace })))).flatMap((l) => l.items);
    await eventually(
      async () => (await pods()).every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && (p.metadata?.namespace === 'legacy' || p.metadata?.annotations?.['warren.io/redirection'] === 'enabled')),
      'pods ready and enrolled',
      60_000,
    );
    const byRef = new Map((await pods()).map((p) => [`${p.metadata!.namespace}/${p.metadata!.name}`, p]));
    const server = byRef.get('foo/tcp-echo')!.status!.podIP!;
    const meshClient = netnsOf(byRef.get('bar/sleep')!);
    const legacyPod = byRef.get('legacy/sleep')!;
    const legacyClient = netnsOf(legacyPod);
    const reaches = async (netns: string): Promise<boolean> => (await echoFrom(netns, server, 9000, Buffer.from('ping')).catch(() => Buffer.alloc(0))).toString() === 'ping';
    const expectAccess = (mesh: boolean, legacy: boolean, what: string) =>
      eventually(async () => (await reaches(meshClient)) === mesh && (await reaches(legacyClient)) === legacy, `${what}: bar/sleep ${mesh ? 'allowed' : 'denied'}, legacy ${legacy ? 'allowed' : 'denied'}`, 10_000);
    const apply = (name: string) => {
      const body = JSON.parse(JSON.stringify(ISTIO_EXAMPLES[name]).replace('LEGACY_IP', legacyPod.status!.podIP!)) as { metadata: { namespace: string } };
      return custom.createNamespacedCustomObject({ ...GROUP, namespace: body.metadata.namespace, body: { apiVersion: 'security.warren.io/v1', kind: 'AuthorizationPolicy', ...body } });
    };
    const remove = (name: string) => {
      const { metadata } = ISTIO_EXAMPLES[name] as { metadata: { name: string; namespace: string } };
      return custom.deleteNamespacedCustomObject({ ...GROUP, namespace: metadata.namespace, name: metadata.name });
    };

    await t.test('no policy: both the mesh client and the plaintext client reach the server', () => expectAccess(true, true, 'no policy'));

    const cases: Array<[string, boolean, boolean]> = [
      ['allow-nothing', false, false],
      ['deny-all', false, false],
      ['allow-from-bar', true, false],
      ['tcp-policy', false, false],
      ['deny-ip', true, false],
      ['when-namespace', true, false],
    ];
    for (const [name, mesh, legacy] of cases) {
      await t.test(`Istio example ${name}: bar/sleep ${mesh ? 'allowed' : 'denied'}, legacy ${legacy ? 'allowed' : 'denied'}; deleting it restores access`, async () => {
        await apply(name);
        try {
          await expectAccess(mesh, legacy, name);
        } finally {
          await remove(name);
        }
        await expectAccess(true, true, `${name} deleted`);
      });
    }

    await t.test('warren policies explain names the deciding policy and rule; warren status shows both agents ready', async () => {
      const explain = async (from: string, to: string): Promise<{ decision: string; basis: string; policy: string | null; rule: number | null; mtls: boolean; to: { node: string } }> => {
        const r = await warren('policies', 'explain', '--from', from, '--to', to, '--state-dir', stateDir, '-o', 'json');
        assert.equal(r.exitCode, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      await apply('tcp-policy');
      try {
        await eventually(async () => (await explain('bar/sleep', 'foo/tcp-echo:9001')).basis === 'allow-rule', 'the agent to see tcp-policy');
        const allowed = await explain('bar/sleep', 'foo/tcp-echo:9001');
        assert.deepEqual([allowed.decision, allowed.policy, allowed.rule, allowed.mtls, allowed.to.node], ['allow', 'foo/tcp-policy', 0, true, 'node-2']);
        const otherPort = await explain('bar/sleep', 'foo/tcp-echo:9000');
        assert.deepEqual([otherPort.decision, otherPort.basis, otherPort.to.node], ['deny', 'no-allow-match', 'node-2']);
        const legacy = await explain('legacy/sleep', 'foo/tcp-echo:9001');
        assert.deepEqual([legacy.decision, legacy.mtls], ['deny', false]);
        const human = await warren('policies', 'explain', '--from', 'bar/sleep', '--to', 'foo/tcp-echo:9001', '--state-dir', stateDir);
        assert.match(human.stdout, /^ALLOW {2}bar\/sleep \(sa sleep, mTLS\) → foo\/tcp-echo :9001 \(node-2\)\n {2}by AuthorizationPolicy foo\/tcp-policy rule 0: from\[0\]\.source\.principals/);
        assert.match(human.stdout, /answered by node-2's agent/);
      } finally {
        await remove('tcp-policy');
      }
      const status = await warren('status', '--state-dir', stateDir);
      assert.equal(status.exitCode, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /^node-1\s+yes\s+(nft|iptables)\s+\d+/m);
      assert.match(status.stdout, /^node-2\s+yes\s+(nft|iptables)\s+\d+/m);
    });

    await t.test('an ALLOW policy with HTTP fields denies at L4 and its status says a waypoint is needed', async () => {
      await apply('http-get-only');
      try {
        await expectAccess(false, false, 'http-get-only');
        await eventually(async () => {
          const p = (await custom.getNamespacedCustomObject({ ...GROUP, namespace: 'foo', name: 'http-get-only' })) as { status?: { conditions?: Array<{ reason: string; message: string }> } };
          const c = p.status?.conditions?.[0];
          return c?.reason === 'WaypointRequired' && /operation\.methods/.test(c.message);
        }, 'the WaypointRequired condition');
        // Both node agents see the policy; one Event names the fields, not one per agent.
        await eventually(async () => (await core.listNamespacedEvent({ namespace: 'foo' })).items.some((e) => e.reason === 'WaypointRequired' && e.involvedObject.name === 'http-get-only'), 'the WaypointRequired Event');
        await new Promise((r) => setTimeout(r, 1000));
        const events = (await core.listNamespacedEvent({ namespace: 'foo' })).items.filter((e) => e.reason === 'WaypointRequired' && e.involvedObject.name === 'http-get-only');
        assert.equal(events.length, 1, JSON.stringify(events.map((e) => e.metadata?.name)));
        assert.match(events[0]!.message ?? '', /operation\.methods/);
      } finally {
        await remove('http-get-only');
      }
      await expectAccess(true, true, 'http-get-only deleted');
    });

    await t.test('relabeling a running pod changes which policies select it', async () => {
      const label = (value: string | null) => core.patchNamespacedPod({ namespace: 'foo', name: 'tcp-echo', body: { metadata: { labels: { locked: value } } } }, mergePatch);
      await apply('deny-locked');
      try {
        await expectAccess(true, true, 'deny-locked selects no pod yet');
        await label('yes');
        await expectAccess(false, false, 'tcp-echo labeled locked=yes');
        await label(null);
        await expectAccess(true, true, 'label removed');
      } finally {
        await label(null).catch(() => undefined);
        await remove('deny-locked');
      }
    });

    await t.test('a live connection is closed when a new DENY covers it', async () => {
      const socket = await connectFromNetns({ netns: `/var/run/netns/${meshClient}`, host: server, port: 9000, mark: 0, timeoutMs: 3000 });
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      socket.on('error', () => {});
      await new Promise<void>((resolve) => {
        socket.once('data', () => resolve());
        socket.write('live');
      });
      const appliedAt = Date.now();
      await apply('deny-all');
      try {
        const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
        assert.notEqual(at, -1, 'the connection was closed');
        t.diagnostic(`closed ${at - appliedAt} ms after the DENY policy was created`);
      } finally {
        socket.destroy();
        await remove('deny-all');
      }
    });
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
