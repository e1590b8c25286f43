import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { warren, warrenEnv } from './warren-cli.js';

/** the agents' data paths a suite runs against (WARREN_TEST_DATAPLANES=node,native; default both) */
export type TestDataplane = 'node' | 'native';
export function testDataplanes(): TestDataplane[] {
  const wanted = (process.env.WARREN_TEST_DATAPLANES ?? 'node,native').split(',').map((s) => s.trim());
  const bad = wanted.filter((d) => d !== 'node' && d !== 'native');
  if (bad.length > 0) throw new Error(`WARREN_TEST_DATAPLANES: unknown data path(s) ${bad.join(', ')}; known: node, native`);
  return wanted as TestDataplane[];
}

/**
 * A two-node simulated cluster in `stateDir` (its API server also on the host's
 * `apiPort`, one per test file so files never share one) with `manifest` applied,
 * its agents on `dataplane`: its admin kubeconfig. The caller runs `warren sim down` in its `finally`.
 * `env` reaches the simulator's warren processes (e.g. WARREN_CERT_TTL for its CA).
 */
export async function simClusterWith(stateDir: string, apiPort: number, manifest: string, dataplane: TestDataplane = 'node', env: Record<string, string> = {}): Promise<KubeConfig> {
  // The simulator's agents inherit WARREN_DATAPLANE (`warren node --dataplane`).
  const up = await warrenEnv({ ...env, WARREN_DATAPLANE: dataplane }, 'sim', 'up', '--nodes', '2', '--state-dir', stateDir, '--api-port', String(apiPort));
  assert.equal(up.exitCode, 0, up.stdout + up.stderr);
  const kc = new KubeConfig();
  kc.loadFromFile(`${stateDir}/kubeconfig`);
  await writeFile(`${stateDir}/manifest.yaml`, manifest);
  const applied = await warren('sim', 'apply', '-f', `${stateDir}/manifest.yaml`, '--state-dir', stateDir);
  assert.equal(applied.exitCode, 0, applied.stdout + applied.stderr);
  return kc;
}
