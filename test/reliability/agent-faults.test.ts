import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import type { V1Pod } from '@kubernetes/client-node';
import { CA_POD, SYSTEM_NAMESPACE } from '../../src/sim/warren-system.js';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { parsePcap } from '../../src/sim/demo/pcap.js';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { planTopology, UNDERLAY } from '../../src/sim/topology/plan.js';
import { eventually } from '../helpers/apiserver.js';
import { sample } from '../helpers/prometheus.js';
import { clientEchoWebPods } from '../helpers/mesh-pods.js';
import { fdKinds, fullLength, recordFigures, ruleApplies, RULE_OPERATIONS, scaled, troubleLines } from '../helpers/reliability.js';
import { rootTest } from '../helpers/root.js';
import { agentPid, GC_EXPOSED, simClusterWith, type TestDataplane } from '../helpers/sim-cluster.js';
import { clientEchoWebReady, connectionOutcome, readyAndEnrolled, webRequest } from '../helpers/sim-pods.js';
import { captureTcp } from '../helpers/wire-capture.js';
import { withLinkDelay } from '../helpers/link-delay.js';
import { warren } from '../helpers/warren-cli.js';

/**
 * Scenarios 2, 4 and 5 of the reliability suite (README "Reliability") on a simulated
 * cluster: the node agent killed under load, the API server unreachable, pods churning.
 * RELIABILITY_DATAPLANE picks the agents' data path (native, the default users run, or node).
 */
const DATAPLANE = (process.env.RELIABILITY_DATAPLANE ?? 'native') as TestDataplane;
if (DATAPLANE !== 'node' && DATAPLANE !== 'native') throw new Error(`RELIABILITY_DATAPLANE: node or native, got ${DATAPLANE}`);
const NS = 'rely';
const PARTITION_S = scaled('PARTITION_SECONDS', 10, 30);
const CHURN_PODS = scaled('CHURN_PODS', 12, 1000);
/** churn pace: pods created (and as many deleted) per minute */
const CHURN_PER_MINUTE = scaled('CHURN_PER_MINUTE', 60, 100);
/** the CA's certificate lifetime (`--cert-ttl`; 10 s is its floor): scenario 3's outage is 55 % of it */
const CERT_TTL_S = scaled('CERT_TTL_SECONDS', 30, 60);
/** scenario 9: seconds of 5 % loss each way on node-1's link, then of 50 ms delay on it, then of that link down */
const LOSS_S = scaled('LOSS_SECONDS', 15, 60);
const DELAY_S = scaled('DELAY_SECONDS', 10, 30);
const DELAY_MS = 50;
const LINK_DOWN_S = scaled('LINK_DOWN_SECONDS', 10, 10);
/** The marker every request carries: seen in plaintext on a node's link, it was bypassed. */
const MARKER = 'warren-reliability-plaintext-marker';

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: {name: ${NS}, labels: {warren.io/dataplane-mode: ambient}}
---
${clientEchoWebPods(NS)}
---
apiVersion: security.warren.io/v1
kind: AuthorizationPolicy
metadata: {name: no-echo, namespace: ${NS}}
spec:
  action: DENY
  rules: [{to: [{operation: {ports: ["9000"]}}]}]
`;

/** One request from the client pod: 'ok' when web answered it over the mesh, else what happened. */
const request = (netns: string, ip: string): Promise<string> => webRequest(netns, ip, { path: MARKER, connectMs: 1000, answerMs: 2000 });

/** Requests one after another until `stop` (bounded by `maxMs`): counts by outcome, when each ok came and how long it took. */
function load(netns: string, ip: string, maxMs: number) {
  const outcomes = new Map<string, number>();
  const oks: number[] = [];
  const okMs: number[] = [];
  let stopped = false;
  const done = (async () => {
    const deadline = Date.now() + maxMs;
    while (!stopped && Date.now() < deadline) {
      const sent = performance.now();
      const r = await request(netns, ip);
      outcomes.set(r, (outcomes.get(r) ?? 0) + 1);
      if (r === 'ok') {
        oks.push(Date.now());
        okMs.push(performance.now() - sent);
      } else await sleep(20);
    }
  })();
  return {
    oks,
    okMs,
    outcomes,
    async stop(): Promise<Record<string, number>> {
      stopped = true;
      await done;
      return Object.fromEntries(outcomes);
    },
  };
}

/** VmRSS and its parts (KiB): anonymous memory (heaps, stacks), and pages of mapped files (the binary's and libraries' code, counted once touched) */
const rssOf = async (pid: number): Promise<{ total: number; anon: number; file: number }> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1]);
  return { total: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
};
const fdCount = async (pid: number): Promise<number> => (await execa('ls', [`/proc/${pid}/fd`])).stdout.split('\n').filter(Boolean).length;
/** Log lines with message `msg`, of pod `pod` when given (the agent logs "pod":"<ns>/<name>"). */
const countLines = (text: string, msg: string, pods?: string[]): number =>
  text.split('\n').filter((l) => l.includes(`"msg":"${msg}"`) && (pods === undefined || pods.some((p) => l.includes(`"pod":"${NS}/${p}"`)))).length;
const STEADY = ['client', 'echo', 'web'];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

rootTest(`agent faults on the ${DATAPLANE} data path: kill -9 under load, API server partition, pod churn, CA outage, network faults`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-rely-`);
  const plan = planTopology(stateDir, ['node-1', 'node-2']);
  /** both agents' logs: the client's (node-1) and the server's (node-2, where the DENY is enforced) */
  const bothLogs = async (): Promise<string> => (await Promise.all(plan.nodes.map((n) => readFile(agentPaths(n).log, 'utf8')))).join('\n');
  const NODES = plan.nodes.map((n) => n.netns);
  /** node-1's netns: the client's node, where the faults are made */
  const NODE1 = NODES[0]!;
  const unpartition = async (): Promise<void> => {
    for (const n of NODES) await execa('ip', ['netns', 'exec', n, 'nft', 'delete', 'table', 'inet', 'wrn-rely-partition'], { reject: false });
  };
  let partitioned = false;
  // scenario 9's faults on node-1's link (wu1 is its underlay end, src/sim/topology/network.ts)
  const lossOff = (): Promise<unknown> => execa('ip', ['netns', 'exec', NODE1, 'nft', 'delete', 'table', 'netdev', 'wrn-rely-loss'], { reject: false });
  const linkUp = (): Promise<unknown> => execa('ip', ['-n', UNDERLAY.netns, 'link', 'set', 'wu1', 'up'], { reject: false });
  let linkFaults = false;
  try {
    const kc = await simClusterWith(stateDir, 16590, MANIFEST, DATAPLANE, { WARREN_CERT_TTL: `${CERT_TTL_S}s`, ...GC_EXPOSED });
    const { core, client, webIp, echoIp } = await clientEchoWebReady(kc, NS);
    const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS })).items;
    await eventually(async () => (await request(client, webIp)) === 'ok', 'a first request through the mesh', 20_000);
    await eventually(async () => (await connectionOutcome(client, echoIp, 9000)) === 'reset', 'the DENY policy enforced', 20_000);

    await t.test('scenario 2: kill -9 of the client node’s agent under load — no plaintext on the link, fail rather than bypass, served again within 2 s of the new agent’s start', async () => {
      const old = await agentPid(stateDir, 'node-1');
      assert.ok(old, 'the agent of node-1 runs');
      let restartedAt = 0;
      let firstOkAfter = 0;
      let figures: Record<string, number> = {};
      const pcap = await captureTcp(
        NODE1,
        'eth0',
        `${stateDir}/kill.pcap`,
        async () => {
          const traffic = load(client, webIp, 60_000);
          await sleep(1500);
          const before = traffic.oks.length;
          const killedAt = Date.now();
          process.kill(old, 'SIGKILL');
          await eventually(async () => ((await agentPid(stateDir, 'node-1')) ?? old) !== old, 'the supervisor to start a new agent', 20_000);
          restartedAt = Date.now();
          await eventually(() => traffic.oks.some((at) => at > restartedAt), 'a request served by the new agent', 20_000);
          firstOkAfter = traffic.oks.find((at) => at > restartedAt)! - restartedAt;
          await sleep(500);
          figures = await traffic.stop();
          // an answer read within 200 ms of the kill may have reached the client's socket before it
          const okDuringOutage = traffic.oks.filter((at) => at > killedAt + 200 && at < restartedAt).length;
          assert.equal(okDuringOutage, 0, 'no request was answered while no agent ran: they failed rather than bypassed');
          assert.ok(before > 0, 'requests succeeded before the kill');
          figures = { ...figures, outageMs: restartedAt - killedAt };
        },
        (segments) => segments.some((s) => s.dstPort === 15008 && s.payload.length > 0),
      );
      const plaintext = parsePcap(pcap).filter((s) => s.payload.includes(MARKER)).length;
      recordFigures(t, 'agent-kill', { dataplane: DATAPLANE, requests: figures, firstServedAfterStartMs: firstOkAfter, plaintextSegmentsOnLink: plaintext });
      assert.equal(plaintext, 0, 'no request left node-1 in plaintext');
      // The 2 s goal is a figure, judged by the full run (`npm run bench -- reliability`) on a quiet
      // machine; the CI length asserts the behaviour (the new agent serves again) with room for a
      // loaded runner: a first CI run measured 3.7 s while six builds shared the two cores.
      const servedWithinMs = fullLength() ? 2000 : 10_000;
      assert.ok(firstOkAfter <= servedWithinMs, `the new agent served a new connection ${firstOkAfter} ms after it started (within ${servedWithinMs} ms at this length; goal ≤ 2000)`);
    });

    await t.test(`scenario 4: API server connections cut, then ${PARTITION_S} s of partition of both nodes — no rule churn, policies held, no pod failed, informers re-list`, async () => {
      const logBefore = await bothLogs();
      const rulesBefore = await ruleApplies(NODES);
      const enrolledBefore = countLines(logBefore, 'pod enrolled', STEADY);
      const unenrolledBefore = countLines(logBefore, 'pod unenrolled', STEADY);
      const restartsBefore = countLines(logBefore, 'informer stopped, restarting');
      const traffic = load(client, webIp, (PARTITION_S + 60) * 1000);
      // The API server runs inside the simulator's control-plane process with the kubelets, so it
      // is not restarted alone: from the agent its restart is every connection reset, then silence.
      partitioned = true;
      for (const n of NODES) {
        await execa('ip', ['netns', 'exec', n, 'nft', '-f', '-'], {
          input: [
            'table inet wrn-rely-partition {',
            `  chain out { type filter hook output priority 0; ip daddr ${UNDERLAY.address} tcp dport ${UNDERLAY.apiServerPort} reject with tcp reset; }`,
            `  chain in { type filter hook input priority 0; ip saddr ${UNDERLAY.address} tcp sport ${UNDERLAY.apiServerPort} drop; }`,
            '}',
          ].join('\n'),
        });
        await execa('ip', ['netns', 'exec', n, 'ss', '-K', 'dst', UNDERLAY.address, 'dport', '=', String(UNDERLAY.apiServerPort)], { reject: false });
      }
      const deniedDuring: string[] = [];
      const deadline = Date.now() + PARTITION_S * 1000;
      while (Date.now() < deadline) {
        deniedDuring.push(await connectionOutcome(client, echoIp, 9000));
        await sleep(1000);
      }
      await unpartition();
      partitioned = false;
      await eventually(async () => countLines(await bothLogs(), 'informer stopped, restarting') > restartsBefore, 'the informers to notice and re-list', 60_000);
      // Settled: after the re-list the agent acts on a change again (a new pod enrolled), so the
      // absence of re-enrollment below is not the agent merely not having looked yet.
      await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'after-partition' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'sleep' }] } } });
      await eventually(async () => readyAndEnrolled(await core.readNamespacedPod({ namespace: NS, name: 'after-partition' })), 'a pod created after the partition enrolled', 60_000);
      const rulesAfter = await ruleApplies(NODES);
      await core.deleteNamespacedPod({ namespace: NS, name: 'after-partition', gracePeriodSeconds: 0 });
      await eventually(async () => (await pods()).length === 3, 'that pod gone', 60_000);
      const requests = await traffic.stop();
      const logAfter = await bothLogs();
      const failed = (await pods()).filter((p) => p.metadata?.annotations?.['warren.io/redirection'] === 'failed').map((p) => p.metadata!.name);
      const figures = {
        dataplane: DATAPLANE,
        partitionSeconds: PARTITION_S,
        requests,
        informerRestarts: countLines(logAfter, 'informer stopped, restarting') - restartsBefore,
        // the new pod's own write is the one pod-apply expected; node writes follow the set of pod IPs
        ruleWrites: Object.fromEntries(RULE_OPERATIONS.map((op) => [op, rulesAfter[op] - rulesBefore[op]])),
        podsEnrolledAgain: countLines(logAfter, 'pod enrolled', STEADY) - enrolledBefore,
        podsUnenrolled: countLines(logAfter, 'pod unenrolled', STEADY) - unenrolledBefore,
        denyHeldChecks: `${deniedDuring.filter((o) => o === 'reset').length}/${deniedDuring.length}`,
        podsAnnotatedFailed: failed.length,
      };
      recordFigures(t, 'api-partition', figures);
      assert.deepEqual(
        { podApply: figures.ruleWrites['pod-apply'], podRemoveCapture: figures.ruleWrites['pod-remove-capture'], podRemove: figures.ruleWrites['pod-remove'] },
        { podApply: 1, podRemoveCapture: 0, podRemove: 0 },
        'no rule churn: the only pod rules written across the partition are the new pod’s (warren_rule_applies_total)',
      );
      assert.equal(figures.podsEnrolledAgain, 0, 'nothing re-enrolled');
      assert.equal(figures.podsUnenrolled, 0, 'nothing un-enrolled');
      assert.deepEqual(deniedDuring.filter((o) => o !== 'reset'), [], 'the DENY policy held from the last good state');
      assert.deepEqual(failed, [], 'no pod annotated failed');
      assert.equal(requests.ok, Object.values(requests).reduce((a, b) => a + b, 0), `every request served through the partition: ${JSON.stringify(requests)}`);
    });

    await t.test(`scenario 5: ${CHURN_PODS} pods created and deleted on node-1 at ${CHURN_PER_MINUTE}/min while traffic flows — nothing leaks`, async () => {
      const pid = (await agentPid(stateDir, 'node-1'))!;
      const admin = async (path: string): Promise<unknown> => JSON.parse((await httpGetInNetns({ netns: NODE1, host: '127.0.0.1', port: 15000, path })).body.toString());
      /** the agent's connections to the API server (watches and its keep-alive pool), from its node's netns */
      const apiConnections = async (): Promise<number> =>
        (await execa('ip', ['netns', 'exec', NODE1, 'ss', '-Htnp', 'state', 'established', 'dst', UNDERLAY.address, 'dport', '=', String(UNDERLAY.apiServerPort)])).stdout.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
      /** after a full GC: RSS (KiB), the JS heap and what V8 counts outside it (bytes), descriptors, API server connections */
      const settle = async (): Promise<{ rss: { total: number; anon: number; file: number }; heap: number; external: number; cHeap: { inUseBytes: number; freeBytes: number }; fds: number; kinds: Record<string, number>; api: number }> => {
        const memory = (await admin('/memory?gc=1')) as { collected: boolean; heapUsed: number; external: number; cHeap: { inUseBytes: number; freeBytes: number } };
        assert.ok(memory.collected, 'the agent ran a full GC before its memory was read (its node runs with --expose-gc)');
        return { rss: await rssOf(pid), heap: memory.heapUsed, external: memory.external, cHeap: memory.cHeap, fds: await fdCount(pid), kinds: await fdKinds(pid), api: await apiConnections() };
      };
      const enrolledNames = async (): Promise<string[]> => ((await admin('/workloads')) as { enrolled: Array<{ pod: string }> }).enrolled.map((w) => w.pod).sort();
      const gapMs = 60_000 / CHURN_PER_MINUTE;
      /** `count` pods created at the pace, each deleted once 3 newer ones exist (creations and deletions overlap as in a rollout). */
      const churn = async (prefix: string, count: number): Promise<number> => {
        const live: string[] = [];
        const began = Date.now();
        for (let i = 0; i < count; i++) {
          await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: `${prefix}-${i}` }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'sleep' }] } } });
          live.push(`${prefix}-${i}`);
          if (live.length > 3) await core.deleteNamespacedPod({ namespace: NS, name: live.shift()!, gracePeriodSeconds: 0 });
          await sleep(Math.max(0, began + (i + 1) * gapMs - Date.now()));
        }
        for (const name of live.splice(0)) await core.deleteNamespacedPod({ namespace: NS, name, gracePeriodSeconds: 0 });
        return count;
      };
      const enrolledBefore = await enrolledNames();
      // The agent was restarted by scenario 2: a few enrollments first load the code paths churn
      // uses, so the baseline is a warm agent's and the comparison is of what churn leaves behind.
      await churn('warmup', 4);
      const podNames = async (): Promise<string> => (await pods()).map((p) => `${p.metadata?.name}:${p.status?.phase ?? '?'}${p.metadata?.deletionTimestamp === undefined ? '' : ':deleting'}`).join(', ');
      /** node-1's netns and its pods' (wrn-node-1-<ns>-<pod>): the churn's, not the machine's, which other work may add or remove meanwhile */
      const netnsNames = async (): Promise<string[]> =>
        (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n === NODE1 || n.startsWith(`${NODE1}-`)).sort();
      /** the state a timed-out wait shows: which pods the API, the agent and the kernel still have */
      const state = (what: string) => async (): Promise<string> =>
        `${what}; API pods [${await podNames()}], agent enrolls [${(await enrolledNames()).join(', ')}] (before: [${enrolledBefore.join(', ')}]), netns [${(await netnsNames()).join(', ')}]; the agents' last warnings: ${(await bothLogs()).split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-5).join('\n')}`;
      await eventually(async () => (await pods()).length === 3, state('the warm-up pods gone from the API'), 120_000);
      await eventually(async () => JSON.stringify(await enrolledNames()) === JSON.stringify(enrolledBefore), state('the agent back to the pods of before the warm-up'), 60_000);
      // the simulator removes a deleted pod's netns after the API has forgotten the pod: the baseline is taken once the warm-up's are gone
      await eventually(async () => !(await netnsNames()).some((n) => n.startsWith(`${NODE1}-${NS}-warmup-`)), state('the warm-up pods’ netns gone'), 60_000);
      const netnsBefore = (await netnsNames()).join(', ');
      const nodeRulesBefore = (await execa('ip', ['netns', 'exec', NODE1, 'nft', 'list', 'ruleset'])).stdout;
      const start = await settle();
      const traffic = load(client, webIp, 30 * 60_000);
      let created: number;
      let requests: Record<string, number>;
      try {
        created = await churn('churn', CHURN_PODS);
        await eventually(async () => (await pods()).length === 3, state('the churned pods gone from the API'), 120_000);
        await eventually(async () => JSON.stringify(await enrolledNames()) === JSON.stringify(enrolledBefore), state('the agent enrolling exactly the pods of before'), 60_000);
        await eventually(async () => (await netnsNames()).join(', ') === netnsBefore, state(`the churned pods’ netns gone (before: [${netnsBefore}])`), 60_000);
      } finally {
        // a failed wait must not leave the request loop running for its 30-minute bound
        requests = await traffic.stop();
      }
      // A renewal (30 s certificates here) holds the HBONE sessions of the old certificate beside
      // their successors until their streams end, a second or so: a leak stays, a renewal passes.
      await eventually(async () => (await fdCount(pid)) <= start.fds + 2, 'the descriptors back to before', 10_000).catch(() => undefined);
      const end = await settle();
      const nodeRulesAfter = (await execa('ip', ['netns', 'exec', NODE1, 'nft', 'list', 'ruleset'])).stdout;
      const figures = {
        dataplane: DATAPLANE,
        podsCreatedAndDeleted: created,
        perMinute: CHURN_PER_MINUTE,
        requests,
        rssStartMiB: +(start.rss.total / 1024).toFixed(1),
        rssEndMiB: +(end.rss.total / 1024).toFixed(1),
        rssChangePct: +(((end.rss.total - start.rss.total) / start.rss.total) * 100).toFixed(1),
        rssAnonMiB: { start: +(start.rss.anon / 1024).toFixed(1), end: +(end.rss.anon / 1024).toFixed(1) },
        rssFileMiB: { start: +(start.rss.file / 1024).toFixed(1), end: +(end.rss.file / 1024).toFixed(1) },
        // where a growth of RSS sits: the JS heap, or memory V8 counts outside it (buffers), or neither (the allocators' free pages, native state)
        heapMiB: { start: +(start.heap / 2 ** 20).toFixed(1), end: +(end.heap / 2 ** 20).toFixed(1) },
        externalMiB: { start: +(start.external / 2 ** 20).toFixed(1), end: +(end.external / 2 ** 20).toFixed(1) },
        // outside V8: blocks the C heap still holds (native state, libraries), or its free memory
        cHeapInUseMiB: { start: +(start.cHeap.inUseBytes / 2 ** 20).toFixed(1), end: +(end.cHeap.inUseBytes / 2 ** 20).toFixed(1) },
        cHeapFreeMiB: { start: +(start.cHeap.freeBytes / 2 ** 20).toFixed(1), end: +(end.cHeap.freeBytes / 2 ** 20).toFixed(1) },
        fdsStart: start.fds,
        fdsEnd: end.fds,
        fdKinds: { start: start.kinds, end: end.kinds },
        apiServerConnections: { start: start.api, end: end.api },
      };
      recordFigures(t, 'churn', figures);
      assert.equal(nodeRulesAfter.replace(/counter packets \d+ bytes \d+/g, ''), nodeRulesBefore.replace(/counter packets \d+ bytes \d+/g, ''), 'the node’s rules are those of before');
      assert.ok(end.fds <= start.fds + 2, `descriptors ${start.fds} → ${end.fds}: ${JSON.stringify(figures.fdKinds)}, API server connections ${start.api} → ${end.api}`);
      // The goal is 10 %; the first short run measured +11.6 % after 12 pods (186 → 208 MiB, descriptors
      // 43 → 42), open in the README's Reliability table. The CI length keeps a tripwire for a gross
      // leak; the full run (1 000 pods) holds the goal.
      const rssGoalPct = fullLength() ? 10 : 25;
      assert.ok(Math.abs(figures.rssChangePct) <= rssGoalPct, `agent RSS ${figures.rssStartMiB} → ${figures.rssEndMiB} MiB (within ${rssGoalPct} % at this length)`);
      assert.equal(requests.ok, Object.values(requests).reduce((a, b) => a + b, 0), `every request between the steady pods served during the churn: ${JSON.stringify(requests)}`);
    });

    await t.test(`scenario 3: CA stopped for ${Math.round(CERT_TTL_S * 0.55)} s of a ${CERT_TTL_S} s certificate lifetime — traffic continues, renewals back off then recover, a new identity waits for the CA`, async () => {
      const identity = `spiffe://cluster.local/ns/${NS}/sa/default`;
      const metrics = async (node: string): Promise<string> => (await httpGetInNetns({ netns: node, host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 })).body.toString();
      const renewals = async (result: 'success' | 'failure'): Promise<number[]> => Promise.all(NODES.map(async (n) => sample(await metrics(n), 'warren_certificate_renewals_total', { result }) ?? 0));
      /** seconds left on each node's certificate of the steady pods' identity */
      const secondsLeft = async (): Promise<number[]> =>
        Promise.all(
          NODES.map(async (n) => {
            const certs = JSON.parse((await httpGetInNetns({ netns: n, host: '127.0.0.1', port: 15000, path: '/certs' })).body.toString()) as { certificates: Array<{ identity: string; state: string; notAfter?: string }> };
            const c = certs.certificates.find((x) => x.identity === identity && x.state === 'valid');
            return c?.notAfter === undefined ? 0 : (Date.parse(c.notAfter) - Date.now()) / 1000;
          }),
        );
      const caRuns = async (): Promise<boolean> => (await execa('pgrep', ['-f', `main.js ca --kubeconfig ${stateDir}/`], { reject: false })).exitCode === 0;
      const outageS = Math.round(CERT_TTL_S * 0.55);
      // An outage longer than the certificates' remaining life breaks traffic by design (fail
      // closed); the claim is about one that starts with them fresh: both at ≥ 70 % of their life.
      // Each spends 60 % of its renewal cycle (half its life) there, so the two overlap every cycle.
      await eventually(async () => Math.min(...(await secondsLeft())) >= CERT_TTL_S * 0.7, 'both nodes’ certificates fresh', CERT_TTL_S * 2000);
      const failuresBefore = await renewals('failure');
      const successesBefore = await renewals('success');
      const trafficFrom = Date.now();
      const traffic = load(client, webIp, (outageS + 120) * 1000);
      const caPod = await core.readNamespacedPod({ namespace: SYSTEM_NAMESPACE, name: CA_POD });
      await core.deleteNamespacedPod({ namespace: SYSTEM_NAMESPACE, name: CA_POD, gracePeriodSeconds: 0 });
      await eventually(async () => !(await caRuns()), 'the CA process stopped', 20_000);
      const stoppedAt = Date.now();
      await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'fresh' } } });
      await core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: 'fresh' },
          spec: { nodeName: 'node-2', serviceAccountName: 'fresh', containers: [{ name: 'web', image: 'http-echo', ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 } }] },
        },
      });
      const freshPod = async (): Promise<V1Pod> => core.readNamespacedPod({ namespace: NS, name: 'fresh' });
      // Waiting, not bypassing: its agent refuses the CNI ADD (no certificate for its identity),
      // so the pod has no network and never runs its app; checked until the outage ends.
      let freshStartedDuringOutage = false;
      while (Date.now() < stoppedAt + outageS * 1000) {
        const p = await freshPod();
        if (p.status?.podIP || p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) freshStartedDuringOutage = true;
        await sleep(500);
      }
      const freshRefusedWith = (await freshPod()).metadata?.annotations?.['warren.io/redirection'];
      const failuresDuring = (await renewals('failure')).map((f, i) => f - failuresBefore[i]!);
      const okDuring = traffic.oks.length;
      const leftAtEnd = await secondsLeft();
      await core.createNamespacedPod({ namespace: SYSTEM_NAMESPACE, body: { metadata: { name: CA_POD, labels: caPod.metadata!.labels!, annotations: caPod.metadata!.annotations! }, spec: caPod.spec! } });
      const backAt = Date.now();
      await eventually(async () => (await renewals('success')).every((s, i) => s > successesBefore[i]!), 'both nodes renewed once the CA is back', CERT_TTL_S * 1000);
      const renewedAfterMs = Date.now() - backAt;
      await eventually(async () => readyAndEnrolled(await freshPod()), 'the new identity’s pod Ready and enrolled once the CA is back', 60_000);
      const freshServedAfterMs = Date.now() - backAt;
      const freshIp = (await freshPod()).status!.podIP!;
      await eventually(async () => (await request(client, freshIp)) === 'ok', 'the new pod serving over the mesh', 20_000);
      const requests = await traffic.stop();
      await core.deleteNamespacedPod({ namespace: NS, name: 'fresh', gracePeriodSeconds: 0 });
      await eventually(async () => (await pods()).length === 3, 'the new pod gone', 60_000);
      const figures = {
        dataplane: DATAPLANE,
        certTtlSeconds: CERT_TTL_S,
        outageSeconds: Math.round((backAt - stoppedAt) / 1000),
        requests,
        requestsOkDuringOutage: okDuring,
        certSecondsLeftAtOutageEnd: leftAtEnd.map((s) => Math.round(s)),
        failedRenewalAttemptsPerNode: failuresDuring,
        renewedAfterCaBackMs: renewedAfterMs,
        newIdentityPodAnnotationDuringOutage: freshRefusedWith ?? null,
        newIdentityServedAfterCaBackMs: freshServedAfterMs,
      };
      recordFigures(t, 'ca-outage', figures);
      if (requests.ok !== Object.values(requests).reduce((a, b) => a + b, 0))
        assert.fail(`every request served through the CA outage: ${JSON.stringify(requests)}\n${troubleLines(await bothLogs(), trafficFrom)}`);
      assert.ok(failuresDuring.every((f) => f >= 1), `each node tried to renew during the outage: ${JSON.stringify(failuresDuring)}`);
      // Without back-off an agent retrying at the 250 ms floor would make 4 attempts a second.
      assert.ok(failuresDuring.every((f) => f <= outageS), `renewal attempts backed off: ${JSON.stringify(failuresDuring)} in ${outageS} s`);
      assert.equal(freshStartedDuringOutage, false, 'the pod of an identity without a certificate did not start while the CA was down');
    });

    await t.test(`scenario 9: node-1's link loses 5 % each way for ${LOSS_S} s, then delays what it sends by ${DELAY_MS} ms for ${DELAY_S} s, then is down for ${LINK_DOWN_S} s — requests succeed or fail cleanly, nothing leaks, the HBONE pool recovers`, async () => {
      const admin = async (node: string, path: string): Promise<unknown> => JSON.parse((await httpGetInNetns({ netns: node, host: '127.0.0.1', port: 15000, path })).body.toString());
      type Conns = Array<{ captured: number; inboundStreams: number; outboundTunnels: Array<{ streams: number }> }>;
      /** proxied legs and tunnel streams still open on both nodes, and the HBONE connections pooled */
      const open = async (): Promise<{ legs: number; tunnels: number }> => {
        const all = (await Promise.all(NODES.map((n) => admin(n, '/connections')))).flat() as Conns;
        return { legs: all.reduce((a, c) => a + c.captured + c.inboundStreams + c.outboundTunnels.reduce((x, o) => x + o.streams, 0), 0), tunnels: all.reduce((a, c) => a + c.outboundTunnels.length, 0) };
      };
      const pids = await Promise.all(['node-1', 'node-2'].map(async (n) => (await agentPid(stateDir, n))!));
      const fds = async (): Promise<number[]> => Promise.all(pids.map(fdCount));
      const stripCounters = (r: string): string => r.replace(/counter packets \d+ bytes \d+/g, '');
      const rulesBefore = stripCounters((await execa('ip', ['netns', 'exec', NODE1, 'nft', 'list', 'ruleset'])).stdout);
      const { legs: legsBefore, tunnels: tunnelsBefore } = await open();
      const fdsBefore = await fds();

      linkFaults = true;
      await execa('ip', ['netns', 'exec', NODE1, 'nft', '-f', '-'], {
        input: [
          'table netdev wrn-rely-loss {',
          '  chain in { type filter hook ingress device "eth0" priority 0; counter; numgen random mod 100 < 5 counter drop; }',
          '  chain out { type filter hook egress device "eth0" priority 0; counter; numgen random mod 100 < 5 counter drop; }',
          '}',
        ].join('\n'),
      });
      const lossy = load(client, webIp, LOSS_S * 1000);
      await sleep(LOSS_S * 1000);
      const duringLoss = await lossy.stop();
      const lossRules = (await execa('ip', ['netns', 'exec', NODE1, 'nft', 'list', 'table', 'netdev', 'wrn-rely-loss'])).stdout;
      const packets = [...lossRules.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
      await lossOff();

      // each request's time on a clean link, then with what node-1 sends held DELAY_MS
      const clean = load(client, webIp, 60_000);
      await eventually(async () => clean.okMs.length >= 20, '20 requests served on the clean link', 60_000);
      await clean.stop();
      const delayFrom = Date.now();
      const { result: duringDelay, counts: delayCounts } = await withLinkDelay(NODE1, 'eth0', DELAY_MS, DELAY_S + 60, stateDir, async () => {
        const slow = load(client, webIp, DELAY_S * 1000);
        await sleep(DELAY_S * 1000);
        return { outcomes: await slow.stop(), okMs: slow.okMs };
      });

      await execa('ip', ['-n', UNDERLAY.netns, 'link', 'set', 'wu1', 'down']);
      const downAt = Date.now();
      const cut = load(client, webIp, LINK_DOWN_S * 1000);
      await sleep(LINK_DOWN_S * 1000);
      const duringDown = await cut.stop();
      await linkUp();
      const upAt = Date.now();
      linkFaults = false;
      await eventually(async () => (await request(client, webIp)) === 'ok', 'a new request served after the link came back', 60_000);
      const recoveredAfterMs = Date.now() - upAt;
      const after: string[] = [];
      for (let i = 0; i < 20; i++) after.push(await request(client, webIp));

      await eventually(async () => (await open()).legs <= legsBefore, 'every proxied connection and tunnel stream of the faults closed', 60_000);
      await eventually(async () => (await fds()).every((f, i) => f <= fdsBefore[i]! + 2), 'the agents’ descriptors back to before', 60_000).catch(() => undefined);
      const fdsAfter = await fds();
      const rulesAfter = stripCounters((await execa('ip', ['netns', 'exec', NODE1, 'nft', 'list', 'ruleset'])).stdout);
      const tunnelsAfter = (await open()).tunnels;
      const figures = {
        dataplane: DATAPLANE,
        lossSeconds: LOSS_S,
        duringLoss,
        linkPackets: { in: packets[0], inDropped: packets[1], out: packets[2], outDropped: packets[3] },
        delaySeconds: DELAY_S,
        duringDelay: duringDelay.outcomes,
        delayedPackets: delayCounts,
        requestMsP50: { cleanLink: +median(clean.okMs).toFixed(1), delayed: +median(duringDelay.okMs).toFixed(1) },
        linkDownSeconds: Math.round((upAt - downAt) / 1000),
        duringLinkDown: duringDown,
        newRequestServedAfterLinkUpMs: recoveredAfterMs,
        afterRecovery: `${after.filter((o) => o === 'ok').length}/${after.length}`,
        fdsBefore,
        fdsAfter,
        pooledHboneConnections: { before: tunnelsBefore, after: tunnelsAfter },
      };
      recordFigures(t, 'network-faults', figures);
      const cleanFailure = (outcome: string): boolean => outcome === 'ok' || outcome === 'timeout' || outcome === 'ECONNRESET' || outcome.startsWith('connect: ');
      assert.deepEqual(Object.keys({ ...duringLoss, ...duringDown }).filter((o) => !cleanFailure(o)), [], 'every request was answered, or failed with a reset or a timeout');
      assert.ok((duringLoss.ok ?? 0) >= 0.8 * Object.values(duringLoss).reduce((a, b) => a + b, 0), `most requests served through 5 % loss: ${JSON.stringify(duringLoss)}`);
      if (duringDelay.outcomes.ok !== Object.values(duringDelay.outcomes).reduce((a, b) => a + b, 0))
        assert.fail(`every request served through the ${DELAY_MS} ms delay: ${JSON.stringify(duringDelay.outcomes)}\n${troubleLines(await bothLogs(), delayFrom)}`);
      assert.ok(delayCounts.delayed > 0 && delayCounts.passedAtOnce === 0, `the delay held node-1's packets: ${JSON.stringify(delayCounts)}`);
      // each request's CONNECT leaves node-1 on the pooled tunnel: at least one delayed packet on its path (0.8: timer slack)
      assert.ok(figures.requestMsP50.delayed >= figures.requestMsP50.cleanLink + 0.8 * DELAY_MS, `requests took the delay: ${JSON.stringify(figures.requestMsP50)}`);
      assert.deepEqual(after, after.map(() => 'ok'), 'the pool recovered: every new request served after the link came back');
      assert.ok(recoveredAfterMs <= 15_000, `served again ${recoveredAfterMs} ms after the link came back`);
      assert.ok(fdsAfter.every((f, i) => f <= fdsBefore[i]! + 2), `agents’ descriptors ${JSON.stringify(fdsBefore)} → ${JSON.stringify(fdsAfter)}`);
      assert.equal(rulesAfter, rulesBefore, 'node-1’s rules are those of before');
      assert.ok(tunnelsAfter <= Math.max(tunnelsBefore, 1) * 2, `pooled HBONE connections ${tunnelsBefore} → ${tunnelsAfter}`);
    });
  } finally {
    if (linkFaults) await Promise.all([lossOff(), linkUp()]);
    if (partitioned) await unpartition();
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
  }
});
