/**
 * README claims about the node agent that only a whole cluster shows, each provoked for
 * real on the simulator: readiness answers 503 until the initial sync (here: an agent
 * restarted while the AuthorizationPolicy CRD is missing) and 200 after it;
 * `warren_cni_add_duration_seconds` counts the kubelet's real CNI ADDs; with
 * `--access-log-level off` (here WARREN_ACCESS_LOG_LEVEL, which the simulator's agents
 * inherit) connections are served and counted but no access log line is written; a pod
 * whose enrollment fails is annotated `warren.io/redirection=failed` with the reason, its
 * traffic is left as it was, and it is enrolled once the cause is gone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { execa } from 'execa';
import { ApiextensionsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { planTopology } from '../../src/sim/topology/plan.js';
import { eventually } from '../helpers/apiserver.js';
import { isDeepStrictEqual } from 'node:util';
import { clientEchoWebPods } from '../helpers/mesh-pods.js';
import { snapshotRules } from '../helpers/pod-rules.js';
import { sample } from '../helpers/prometheus.js';
import { rootTest } from '../helpers/root.js';
import { agentPid, simClusterWith, testDataplanes } from '../helpers/sim-cluster.js';
import { echoFrom, netnsOf } from '../helpers/sim-pods.js';
import { warren } from '../helpers/warren-cli.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const NS = 'mesh';
const PLAIN = 'plain';

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}, labels: {warren.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ${PLAIN}}
---
${clientEchoWebPods(NS)}
---
apiVersion: v1
kind: Pod
metadata: {name: busy, namespace: ${PLAIN}}
spec:
  nodeName: node-1
  containers: [{name: c, image: sleep}]
`;

/** What the node's agent answers on one of its ports, from inside the node's netns. */
const agentGet = (node: string, port: number, path: string) => httpGetInNetns({ netns: `wrn-${node}`, host: '127.0.0.1', port, path, timeoutMs: 2000 });
const metricsOf = async (node: string): Promise<string> => (await agentGet(node, 15020, '/metrics')).body.toString();

for (const dataplane of testDataplanes())
rootTest(`agent claims on a cluster (--dataplane ${dataplane}): readiness after the initial sync, CNI ADD histogram, access log off, redirection=failed`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-claims-`);
  const previousLevel = process.env['WARREN_ACCESS_LOG_LEVEL'];
  process.env['WARREN_ACCESS_LOG_LEVEL'] = 'off'; // inherited by `warren sim up`, its supervisor and the agents
  let occupier: ChildProcess | undefined;
  const plan = planTopology(stateDir, ['node-1', 'node-2']);
  const node1 = plan.nodes[0]!;
  try {
    const kc = await simClusterWith(stateDir, 16561, MANIFEST, dataplane);
    const core = kc.makeApiClient(CoreV1Api);
    const pod = (ns: string, name: string): Promise<V1Pod> => core.readNamespacedPod({ namespace: ns, name });
    const ready = async (ns: string): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: ns })).items;
    await eventually(async () => [...(await ready(NS)), ...(await ready(PLAIN))].every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')), 'pods ready', 60_000);

    await t.test('readiness: 503 while the agent cannot complete its initial sync, 200 once it has', async () => {
      // An agent (re)started before the AuthorizationPolicy CRD exists cannot list policies, so it
      // cannot have synced: it must not say ready (it would enroll pods without their policies).
      const ext = kc.makeApiClient(ApiextensionsV1Api);
      const crd = typedCrds().find((c) => c.spec.names.plural === 'authorizationpolicies')!;
      await ext.deleteCustomResourceDefinition({ name: crd.metadata!.name! });
      await eventually(async () => (await ext.listCustomResourceDefinition()).items.every((c) => c.metadata?.name !== crd.metadata!.name), 'the CRD gone');
      const old = await agentPid(stateDir, 'node-1');
      assert.ok(old, 'the agent of node-1 runs');
      const logFile = agentPaths(node1).log;
      const logBefore = (await readFile(logFile, 'utf8')).length;
      process.kill(old, 'SIGKILL');
      await eventually(async () => ((await agentPid(stateDir, 'node-1')) ?? old) !== old, 'the agent restarted', 15_000);
      // Positive signals first: the new agent answers, and has failed to list policies twice.
      await eventually(async () => (await agentGet('node-1', 15021, '/healthz/ready').catch(() => undefined)) !== undefined, 'the new agent answering', 15_000);
      const retries = async (): Promise<number> =>
        (await readFile(logFile, 'utf8')).slice(logBefore).split('\n').filter((l) => l.includes('"msg":"informer stopped, restarting"') && l.includes('authorizationpolicies')).length;
      await eventually(async () => (await retries()) >= 2, 'the agent retrying the policy list', 15_000);
      const notYet = await agentGet('node-1', 15021, '/healthz/ready');
      assert.equal(notYet.status, 503);
      assert.match(notYet.body.toString(), /initial sync not done/);
      await ext.createCustomResourceDefinition({ body: crd });
      await eventually(async () => (await agentGet('node-1', 15021, '/healthz/ready').catch(() => undefined))?.status === 200, 'ready after the sync', 30_000);
    });

    await t.test('warren_cni_add_duration_seconds counts the kubelet’s ADDs by result', async () => {
      // The agent of node-1 was restarted above: its histogram starts from what it has served since.
      const count = async (result: string): Promise<number> => sample(await metricsOf('node-1'), 'warren_cni_add_duration_seconds_count', { result }) ?? 0;
      const [enrolled0, skipped0] = [await count('enrolled'), await count('skipped')];
      for (const [ns, name] of [[NS, 'late-1'], [NS, 'late-2'], [PLAIN, 'late-3']] as const) {
        await core.createNamespacedPod({ namespace: ns, body: { metadata: { name }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'sleep' }] } } });
      }
      for (const [ns, name] of [[NS, 'late-1'], [NS, 'late-2'], [PLAIN, 'late-3']] as const) {
        await eventually(async () => (await pod(ns, name)).status?.phase === 'Running', `${name} running`, 30_000);
      }
      assert.equal((await pod(NS, 'late-1')).metadata?.annotations?.['warren.io/redirection'], 'enabled');
      assert.equal(await count('enrolled'), enrolled0 + 2, 'one enrolled ADD per pod of the labeled namespace');
      assert.equal(await count('skipped'), skipped0 + 1, 'one skipped ADD for the pod of the unlabeled namespace');
      const sum = sample(await metricsOf('node-1'), 'warren_cni_add_duration_seconds_sum', { result: 'enrolled' }) ?? 0;
      assert.ok(sum > 0, 'the enrolled ADDs took measurable time');
    });

    await t.test('--access-log-level off: connections are served and counted, no access log line is written', async () => {
      const [client, echo] = [await pod(NS, 'client'), await pod(NS, 'echo')];
      const closed = async (node: string): Promise<number> =>
        sample(await metricsOf(node), 'istio_tcp_connections_closed_total', { reporter: node === 'node-1' ? 'source' : 'destination' }) ?? 0;
      const before = [await closed('node-1'), await closed('node-2')];
      const payload = Buffer.from('over the mesh, unlogged');
      assert.ok((await echoFrom(netnsOf(client), echo.status!.podIP!, 9000, payload)).equals(payload));
      // Both agents have closed the connection (the moment an access log line would be written).
      await eventually(async () => (await closed('node-1')) > before[0]! && (await closed('node-2')) > before[1]!, 'both agents counting the closed connection', 10_000);
      for (const node of plan.nodes) {
        const text = await readFile(agentPaths(node).log, 'utf8');
        assert.match(text, /"msg":"node agent ready"/, `${node.name}: the log being read is the agent's`);
        assert.doesNotMatch(text, /"log":"access"|"msg":"connection"/, `${node.name}: no access log line`);
      }
    });

    await t.test('a pod whose enrollment fails is annotated failed with the reason, keeps its traffic, and is enrolled once the cause is gone', async () => {
      const busy = await pod(PLAIN, 'busy');
      const before = await snapshotRules(netnsOf(busy));
      // An app holding the agent's HBONE port in the pod (Istio reserves 15001/15006/15008 too).
      occupier = spawn('ip', ['netns', 'exec', netnsOf(busy), 'socat', 'TCP-LISTEN:15008', 'EXEC:/bin/true'], { stdio: 'ignore' });
      await eventually(async () => (await execa('ip', ['netns', 'exec', netnsOf(busy), 'ss', '-Hltn', 'sport = :15008'])).stdout.trim() !== '', 'the app listening on 15008');
      await core.patchNamespacedPod({ namespace: PLAIN, name: 'busy', body: { metadata: { labels: { 'warren.io/dataplane-mode': 'ambient' } } } }, mergePatch);
      await eventually(async () => (await pod(PLAIN, 'busy')).metadata?.annotations?.['warren.io/redirection'] === 'failed', 'busy annotated failed', 15_000);
      const failed = await pod(PLAIN, 'busy');
      assert.match(failed.metadata!.annotations!['warren.io/redirection-reason'] ?? '', /15008|EADDRINUSE|in use/i, 'the reason names the cause');
      // The agent retries a failed pod (every 2 s, and on the pod's own events), and each try
      // applies the rules and takes them back when the listeners fail: a snapshot taken during
      // a try sees them. What must hold is that every try ends with the ruleset as it was.
      await eventually(async () => isDeepStrictEqual(await snapshotRules(netnsOf(busy)), before), 'no rule left behind: the pod is not black-holed', 10_000);
      const exited = once(occupier, 'exit');
      occupier.kill('SIGTERM');
      await exited;
      occupier = undefined;
      await eventually(async () => (await pod(PLAIN, 'busy')).metadata?.annotations?.['warren.io/redirection'] === 'enabled', 'busy enrolled on a retry', 15_000);
      assert.equal((await pod(PLAIN, 'busy')).metadata?.annotations?.['warren.io/redirection-reason'], undefined, 'the reason is cleared');
    });
  } finally {
    occupier?.kill('SIGKILL');
    if (previousLevel === undefined) delete process.env['WARREN_ACCESS_LOG_LEVEL'];
    else process.env['WARREN_ACCESS_LOG_LEVEL'] = previousLevel;
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
  }
});
