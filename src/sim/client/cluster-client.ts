import { existsSync } from 'node:fs';
import { ApiException, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { WarrenError } from '../../errors/warren-error.js';
import { statePaths } from '../state-dir.js';

export interface SimClient {
  kc: KubeConfig;
  core: CoreV1Api;
}

/** A client for the simulated cluster, with the admin kubeconfig `sim up` wrote. */
export function adminKubeConfig(stateDir: string): SimClient {
  const path = statePaths(stateDir).kubeconfig;
  if (!existsSync(path)) throw new WarrenError('ERR_SIM_NOT_RUNNING', `no simulated cluster in ${stateDir} (no ${path}); start one with \`warren sim up\``);
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

export async function findPod(client: SimClient, namespace: string, name: string): Promise<V1Pod> {
  try {
    return await client.core.readNamespacedPod({ namespace, name });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) throw new WarrenError('ERR_SIM_POD', `pod ${namespace}/${name} not found`);
    throw new WarrenError('ERR_SIM_NOT_RUNNING', `the simulated cluster's API server did not answer (${(err as Error).message}); is it up? (warren sim status)`);
  }
}
