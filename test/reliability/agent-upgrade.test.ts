import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { planTopology } from '../../src/sim/topology/plan.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';
import { eventually } from '../helpers/apiserver.js';
import { clientEchoWebPods } from '../helpers/mesh-pods.js';
import { recordFigures, ruleApplies, scaled, troubleLines } from '../helpers/reliability.js';
import { rootTest } from '../helpers/root.js';
import { simClusterWith, type TestDataplane } from '../helpers/sim-cluster.js';
import { clientEchoWebReady, webRequest } from '../helpers/sim-pods.js';
import { warren } from '../helpers/warren-cli.js';

/**
 * Scenario 1 of the reliability suite (README "Reliability"): node-1's agent replaced
 * as a DaemonSet rolling update with maxSurge: 1 does (`warren sim upgrade-agent`)
 * while its client pod opens NEW_PER_S new connections a second and holds LONG_LIVED
 * long-lived ones through it. First the baseline, in the same run: the hand-off socket
 * removed, so the new agent binds its own SO_REUSEPORT listeners beside the old one's
 * and the old closes its own (what the rolling update did before the hand-off); then the
 * upgrade with the listener hand-off (docs/architecture.md §4): 0 failed new connections,
 * and no rule churn: the new agent leaves the pod rules the old one wrote (0 `pod-apply`
 * in its warren_rule_applies_total), where without the hand-off it writes every pod's again.
 */
const DATAPLANE = (process.env.RELIABILITY_DATAPLANE ?? 'native') as TestDataplane;
if (DATAPLANE !== 'node' && DATAPLANE !== 'native') throw new Error(`RELIABILITY_DATAPLANE: node or native, got ${DATAPLANE}`);
const NS = 'upgrade';
const NEW_PER_S = scaled('UPGRADE_NEW_PER_SECOND', 50, 200);
const LONG_LIVED = scaled('UPGRADE_LONG_LIVED', 100, 1000);

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: {name: ${NS}, labels: {warren.io/dataplane-mode: ambient}}
---
${clientEchoWebPods(NS)}
`;

/** One new connection from the client pod: 'ok' when web answered over the mesh, else what happened. */
const request = (netns: string, ip: string): Promise<string> => webRequest(netns, ip);

/** NEW_PER_S connections a second, each started on time whatever the others do (open loop), until stopped. */
function newConnections(netns: string, ip: string) {
  const outcomes: Promise<string>[] = [];
  const began = Date.now();
  let stopped = false;
  const pacing = (async () => {
    // bounded: 5 minutes at most
    for (let i = 0; !stopped && i < NEW_PER_S * 300; i++) {
      outcomes.push(request(netns, ip));
      await sleep(Math.max(0, began + ((i + 1) * 1000) / NEW_PER_S - Date.now()));
    }
  })();
  return {
    async stop(): Promise<Record<string, number>> {
      stopped = true;
      await pacing;
      const all = await Promise.all(outcomes);
      return all.reduce<Record<string, number>>((t, o) => ((t[o] = (t[o] ?? 0) + 1), t), {});
    },
  };
}

/** A long-lived connection to echo: a line every second, each echoed; how it ended. */
async function longLived(netns: string, ip: string): Promise<{ ended: Promise<string>; finish(): void }> {
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host: ip, port: 9000, mark: 0, timeoutMs: 5000 });
  let echoed = 0;
  let sent = 0;
  socket.on('data', (d: Buffer) => (echoed += d.length));
  const tick = setInterval(() => {
    socket.write('ping\n');
    sent += 5;
  }, 1000);
  let finishing = false;
  const ended = new Promise<string>((resolve) => {
    // Closed by the old agent at the end of its drain: a reset (never a FIN, which a half-open client would miss).
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNRESET' ? 'reset at the end of the drain' : `error ${err.code ?? err.message}`));
    socket.once('end', () => resolve(finishing ? 'finished' : 'FIN from the agent'));
    socket.once('close', () => resolve(echoed >= sent - 5 ? 'finished' : 'closed with bytes missing'));
  }).finally(() => clearInterval(tick));
  return {
    ended,
    finish: () => {
      finishing = true;
      socket.end();
    },
  };
}

/** The agent log's JSON lines (both agents write it) with message `msg`, written at or after `since`. */
const lines = (text: string, msg: string, since: number): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => typeof l.time === 'number' && l.time >= since);

rootTest(`agent upgrade on the ${DATAPLANE} data path: ${NEW_PER_S} new connections/s and ${LONG_LIVED} long-lived through node-1's agent while it is replaced`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-upgrade-`);
  const nodes = planTopology(stateDir, ['node-1', 'node-2']).nodes;
  const node1 = nodes[0]!;
  try {
    const kc = await simClusterWith(stateDir, 16591, MANIFEST, DATAPLANE);
    const { client, webIp, echoIp } = await clientEchoWebReady(kc, NS);
    await eventually(async () => (await request(client, webIp)) === 'ok', 'a first request through the mesh', 20_000);

    /** One upgrade of node-1's agent under load: the figures. */
    const upgradeUnderLoad = async (label: string) => {
      const rulesBefore = await ruleApplies(['wrn-node-1']);
      const held = await Promise.all(Array.from({ length: LONG_LIVED }, () => longLived(client, echoIp)));
      const load = newConnections(client, webIp);
      await sleep(1000);
      const started = Date.now();
      const up = await warren('sim', 'upgrade-agent', '--state-dir', stateDir, 'node-1');
      assert.equal(up.exitCode, 0, up.stdout + up.stderr);
      const upgradeMs = Date.now() - started;
      // the new agent's counters: it counts from 0, so this is every rule write it made
      const rulesAfter = await ruleApplies(['wrn-node-1']);
      await sleep(1000);
      const newConns = await load.stop();
      for (const h of held) h.finish();
      const ended = await Promise.all(held.map((h) => Promise.race([h.ended, sleep(5000).then(() => 'still open')])));
      const longLivedOutcomes = ended.reduce<Record<string, number>>((t, o) => ((t[o] = (t[o] ?? 0) + 1), t), {});
      const log = await readFile(agentPaths(node1).log, 'utf8');
      const took = lines(log, 'listener hand-off: a new agent takes over', started)[0]?.time as number | undefined;
      const ended_ = lines(log, 'listener hand-off ended', started)[0];
      const total = Object.values(newConns).reduce((a, b) => a + b, 0);
      return {
        label,
        dataplane: DATAPLANE,
        newPerSecond: NEW_PER_S,
        newConnections: total,
        failedNewConnections: total - (newConns.ok ?? 0),
        newOutcomes: newConns,
        longLived: LONG_LIVED,
        longLivedOutcomes,
        upgradeMs,
        takeoverMs: took !== undefined && typeof ended_?.time === 'number' ? ended_.time - took : undefined,
        podsTakenOver: ended_?.podsTakenOver,
        ruleWritesOldAgent: rulesBefore,
        ruleWritesNewAgent: rulesAfter,
      };
    };

    // Baseline: no hand-off socket, so the new agent makes its own listeners.
    rmSync(`${agentPaths(node1).dir}/handoff.sock`, { force: true });
    const baseline = await upgradeUnderLoad('without hand-off (SO_REUSEPORT overlap, old listeners closed)');
    recordFigures(t, 'agent-upgrade-baseline', baseline);
    await eventually(async () => (await request(client, webIp)) === 'ok', 'served again after the baseline upgrade', 20_000);
    const handoffFrom = Date.now();
    const handoff = await upgradeUnderLoad('listener hand-off');
    recordFigures(t, 'agent-upgrade', handoff);

    if (handoff.failedNewConnections > 0) {
      const logs = (await Promise.all(nodes.map((n) => readFile(agentPaths(n).log, 'utf8')))).join('\n');
      // the long-lived connections to echo (:9000) are reset at the end of the drain, as they should be
      assert.fail(`no new connection failed during the upgrade: ${JSON.stringify(handoff.newOutcomes)}\n${troubleLines(logs, handoffFrom, { except: /"port":9000/ })}`);
    }
    assert.ok((handoff.podsTakenOver as number) >= 1, 'the new agent took over the client pod’s listeners');
    assert.equal(handoff.ruleWritesNewAgent['pod-apply'], 0, `no rule churn: the new agent wrote no pod rules, it kept the old one's: ${JSON.stringify(handoff.ruleWritesNewAgent)}`);
    assert.ok(baseline.ruleWritesNewAgent['pod-apply'] >= 1, 'without the hand-off the new agent writes the pods’ rules itself (the check above can fail)');
    const clean = (o: Record<string, number>): number => (o['finished'] ?? 0) + (o['reset at the end of the drain'] ?? 0);
    assert.equal(clean(handoff.longLivedOutcomes), LONG_LIVED, `every long-lived connection finished or was reset at the end of the drain: ${JSON.stringify(handoff.longLivedOutcomes)}`);
  } finally {
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
  }
});
