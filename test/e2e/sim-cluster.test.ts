import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { CoreV1Api, KubeConfig, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { httpGetFromPod } from '../../src/sim/client/pod-http.js';
import { podNetnsName } from '../../src/sim/topology/plan.js';
import { eventually } from '../helpers/apiserver.js';
import { rootTest } from '../helpers/root.js';
import { assertAgentsOn, testDataplanes } from '../helpers/sim-cluster.js';
import { warren, warrenEnv } from '../helpers/warren-cli.js';

const NS = 'demo';

/** An echo service with two replicas, which the scheduler spreads over both nodes, and a client pod on node-1. */
const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: hashicorp/http-echo
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: curl, image: curlimages/curl, command: [sleep, infinity]}]
`;

for (const dataplane of testDataplanes())
rootTest(`sim (agents on --dataplane ${dataplane}): two nodes, pods across nodes by IP, service by DNS and ClusterIP, informers, kubectl, and down leaves nothing`, async () => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-sim-`);
  let stopInformer = async (): Promise<void> => {};
  try {
    const up = await warrenEnv({ WARREN_DATAPLANE: dataplane }, 'sim', 'up', '--nodes', '2', '--state-dir', stateDir, '--api-port', '16543');
    assert.equal(up.exitCode, 0, up.stdout + up.stderr);
    assert.match(up.stdout, /2\/2 nodes Ready/);
    assert.match(up.stdout, new RegExp(`kubeconfig: ${stateDir}/kubeconfig`));
    await assertAgentsOn(stateDir, dataplane);

    const again = await warren('sim', 'up', '--state-dir', stateDir);
    assert.notEqual(again.exitCode, 0, 'a second up must refuse');
    assert.match(again.stderr, /already running|exists/);

    const kc = new KubeConfig();
    kc.loadFromFile(`${stateDir}/kubeconfig`);
    const core = kc.makeApiClient(CoreV1Api);
    const events: string[] = [];
    const informer = makeInformer<V1Pod>(kc, '/api/v1/namespaces/demo/pods', () => core.listNamespacedPod({ namespace: NS }));
    informer.on('add', (p) => events.push(`add:${p.metadata?.name}`));
    informer.on('delete', (p) => events.push(`delete:${p.metadata?.name}`));
    let informerStopped = false;
    // client-node's informer stops on a connection error; its owner restarts it (until the test is done).
    informer.on('error', () => setTimeout(() => void (informerStopped ? undefined : informer.start().catch(() => undefined)), 500));
    stopInformer = async () => {
      informerStopped = true;
      await informer.stop();
    };

    const manifest = `${stateDir}/demo.yaml`;
    await writeFile(manifest, MANIFEST);
    const applied = await warren('sim', 'apply', '-f', manifest, '--state-dir', stateDir);
    assert.equal(applied.exitCode, 0, applied.stderr);
    await informer.start();

    let pods: V1Pod[] = [];
    await eventually(
      async () => {
        pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
        return pods.length === 2 && pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      },
      'two ready web pods',
      60_000,
    );
    const nodes = new Set(pods.map((p) => p.spec?.nodeName));
    assert.deepEqual([...nodes].sort(), ['node-1', 'node-2'], 'the scheduler spreads the replicas');
    for (const p of pods) assert.match(p.status?.podIP ?? '', p.spec?.nodeName === 'node-1' ? /^10\.244\.1\./ : /^10\.244\.2\./);

    await eventually(async () => (await core.readNamespacedPod({ namespace: NS, name: 'client' })).status?.phase === 'Running', 'the client pod', 30_000);
    const client = await core.readNamespacedPod({ namespace: NS, name: 'client' });
    const clientNetns = podNetnsName('node-1', NS, 'client');

    // Pod to pod across nodes, by IP, with the client's own address preserved.
    const remote = pods.find((p) => p.spec?.nodeName === 'node-2')!;
    const direct = await httpGetFromPod(clientNetns, remote.status!.podIP!, 8080);
    assert.equal(direct.pod, remote.metadata!.name);
    assert.equal(direct.client.ip, client.status!.podIP);

    // The service by DNS name (search path and FQDN) through the pod's resolv.conf.
    const svc = await core.readNamespacedService({ namespace: NS, name: 'web' });
    for (const name of ['web', 'web.demo.svc.cluster.local']) {
      const resolved = await execa('ip', ['netns', 'exec', clientNetns, 'getent', 'hosts', name]);
      assert.equal(resolved.stdout.split(/\s+/)[0], svc.spec!.clusterIP, name);
    }

    // The ClusterIP, load-balanced across both nodes' pods.
    await eventually(async () => (await httpGetFromPod(clientNetns, svc.spec!.clusterIP!, 80).catch(() => undefined)) !== undefined, 'the ClusterIP to answer', 15_000);
    const answered = new Set<string>();
    for (let i = 0; i < 30 && answered.size < 2; i++) answered.add((await httpGetFromPod(clientNetns, svc.spec!.clusterIP!, 80)).pod);
    assert.deepEqual([...answered].sort(), pods.map((p) => p.metadata!.name!).sort());

    // kubectl, unchanged, through the sim.
    const kubectl = (...args: string[]) => warren('sim', 'kubectl', '--state-dir', stateDir, ...args);
    assert.equal((await kubectl('label', 'ns', NS, 'istio.io/dataplane-mode=ambient')).exitCode, 0);
    const nsJson = JSON.parse((await kubectl('get', 'ns', NS, '-o', 'json')).stdout);
    assert.equal(nsJson.metadata.labels['istio.io/dataplane-mode'], 'ambient');
    assert.match((await kubectl('get', 'pods', '-n', NS, '-o', 'wide')).stdout, /client\s+1\/1\s+Running/);

    // Deleting a pod: the informer sees it go, the Deployment replaces it, its netns is removed.
    const victim = pods[0]!;
    const victimNetns = podNetnsName(victim.spec!.nodeName!, NS, victim.metadata!.name!);
    assert.equal((await kubectl('delete', 'pod', '-n', NS, victim.metadata!.name!)).exitCode, 0);
    await eventually(() => events.includes(`delete:${victim.metadata!.name}`), 'the informer to see the delete');
    await eventually(async () => !existsSync(`/var/run/netns/${victimNetns}`), "the deleted pod's netns to go", 15_000);
    await eventually(() => events.filter((e) => e.startsWith('add:web-')).length >= 3, 'a replacement pod', 15_000);
    assert.ok(events.indexOf(`add:${victim.metadata!.name}`) < events.indexOf(`delete:${victim.metadata!.name}`));

    // A failing liveness probe (nothing listens on :9) makes the kubelet restart the container.
    const flaky = `${stateDir}/flaky.yaml`;
    await writeFile(flaky, `apiVersion: v1\nkind: Pod\nmetadata: {name: flaky, namespace: ${NS}}\nspec:\n  nodeName: node-2\n  containers:\n  - name: app\n    image: busybox\n    livenessProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 1}\n`);
    assert.equal((await warren('sim', 'apply', '-f', flaky, '--state-dir', stateDir)).exitCode, 0);
    await eventually(async () => ((await core.readNamespacedPod({ namespace: NS, name: 'flaky' })).status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 'a liveness restart', 20_000);

    const logs = await warren('sim', 'logs', 'demo/client', '--state-dir', stateDir);
    assert.equal(logs.exitCode, 0, logs.stderr);
    const ran = await warren('sim', 'exec', '--state-dir', stateDir, 'demo/client', '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0');
    assert.match(ran.stdout, new RegExp(client.status!.podIP!.replace(/\./g, '\\.')));
  } finally {
    await stopInformer();
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
  }
  const status = await warren('sim', 'status', '--state-dir', stateDir);
  assert.match(status.stdout, /no simulated cluster/);
  const left = (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('wrn-'));
  assert.deepEqual(left, []);
  const procs = await execa('pgrep', ['-f', `sim serve --state-dir ${stateDir}`], { reject: false });
  assert.equal(procs.stdout.trim(), '', 'no control plane process left');
});
