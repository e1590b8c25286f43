import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { warren } from './warren-cli.js';

/**
 * A two-node simulated cluster in `stateDir` (its API server also on the host's
 * `apiPort`, one per test file so files never share one) with `manifest` applied:
 * its admin kubeconfig. The caller runs `warren sim down` in its `finally`.
 */
export async function simClusterWith(stateDir: string, apiPort: number, manifest: string): Promise<KubeConfig> {
  const up = await warren('sim', 'up', '--nodes', '2', '--state-dir', stateDir, '--api-port', String(apiPort));
  assert.equal(up.exitCode, 0, up.stdout + up.stderr);
  const kc = new KubeConfig();
  kc.loadFromFile(`${stateDir}/kubeconfig`);
  await writeFile(`${stateDir}/manifest.yaml`, manifest);
  const applied = await warren('sim', 'apply', '-f', `${stateDir}/manifest.yaml`, '--state-dir', stateDir);
  assert.equal(applied.exitCode, 0, applied.stdout + applied.stderr);
  return kc;
}
