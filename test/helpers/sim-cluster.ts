import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { execa } from 'execa';
import { agentPaths } from '../../src/sim/agent-supervisor.js';
import { planTopology } from '../../src/sim/topology/plan.js';
import { eventually } from './apiserver.js';
import { warren, warrenEnv } from './warren-cli.js';

/** the agents' data paths a suite runs against (WARREN_TEST_DATAPLANES=node,native; default both) */
export type TestDataplane = 'node' | 'native';
export function testDataplanes(): TestDataplane[] {
  const wanted = (process.env.WARREN_TEST_DATAPLANES ?? 'node,native').split(',').map((s) => s.trim());
  const bad = wanted.filter((d) => d !== 'node' && d !== 'native');
  if (bad.length > 0) throw new Error(`WARREN_TEST_DATAPLANES: unknown data path(s) ${bad.join(', ')}; known: node, native`);
  return wanted as TestDataplane[];
}

/** `env` for simClusterWith whose agents then run a full GC on admin `/memory?gc=1`, so memory read after it is what stays live. */
export const GC_EXPOSED = { NODE_OPTIONS: '--expose-gc' } as const;

/**
 * A two-node simulated cluster in `stateDir` (its API server also on the host's
 * `apiPort`, one per test file so files never share one) with `manifest` applied,
 * its agents on `dataplane` (their logs say so, or it fails): its admin kubeconfig. The caller runs `warren sim down` in its `finally`.
 * `env` reaches the simulator's warren processes (e.g. WARREN_CERT_TTL for its CA).
 */
export async function simClusterWith(stateDir: string, apiPort: number, manifest: string, dataplane: TestDataplane = 'native', env: Record<string, string> = {}): Promise<KubeConfig> {
  // The simulator's agents inherit WARREN_DATAPLANE (`warren node --dataplane`).
  const up = await warrenEnv({ ...env, WARREN_DATAPLANE: dataplane }, 'sim', 'up', '--nodes', '2', '--state-dir', stateDir, '--api-port', String(apiPort));
  assert.equal(up.exitCode, 0, up.stdout + up.stderr);
  const kc = new KubeConfig();
  kc.loadFromFile(`${stateDir}/kubeconfig`);
  await writeFile(`${stateDir}/manifest.yaml`, manifest);
  const applied = await warren('sim', 'apply', '-f', `${stateDir}/manifest.yaml`, '--state-dir', stateDir);
  assert.equal(applied.exitCode, 0, applied.stdout + applied.stderr);
  await assertAgentsOn(stateDir, dataplane);
  return kc;
}

/** Waits (bounded) for both agents of the cluster in `stateDir` to log that they are ready, and requires them to say `dataplane`. */
export async function assertAgentsOn(stateDir: string, dataplane: TestDataplane): Promise<void> {
  const readyLine = /"dataplane":"(\w+)".*"msg":"node agent ready"/;
  for (const node of planTopology(stateDir, ['node-1', 'node-2']).nodes) {
    const log = agentPaths(node).log;
    await eventually(async () => readyLine.test(await readFile(log, 'utf8').catch(() => '')), `${node.name}'s agent ready`, 60_000);
    assert.equal(readyLine.exec(await readFile(log, 'utf8'))?.[1], dataplane, `${node.name}'s agent runs --dataplane ${dataplane}`);
  }
}

/**
 * The pid of `node`'s agent in the cluster in `stateDir`, undefined while none runs. The pattern
 * names the cluster: `--node-name node-1` alone also matches another cluster's agent on the same
 * machine, whose pid a test would take for a restart of its own (or kill).
 */
export async function agentPid(stateDir: string, node: string): Promise<number | undefined> {
  const dir = stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const out = (await execa('pgrep', ['-f', `main\\.js node --kubeconfig ${dir}/[^ ]+ --node-name ${node}( |$)`], { reject: false })).stdout.trim().split('\n')[0];
  return out ? Number(out) : undefined;
}
