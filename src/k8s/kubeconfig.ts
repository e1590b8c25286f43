import { KubeConfig } from '@kubernetes/client-node';
import { WarrenError } from '../errors/warren-error.js';

/** The API server credentials of a warren process: a kubeconfig file if given, the pod's service account otherwise. */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file !== undefined) kc.loadFromFile(file);
    else kc.loadFromCluster();
  } catch (err) {
    throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file ?? '(in-cluster)'}: ${(err as Error).message}`);
  }
  if (kc.getCurrentCluster() === null) throw new WarrenError('ERR_CONFIG', `--kubeconfig ${file ?? '(in-cluster)'}: no cluster (not running in a pod? give --kubeconfig)`);
  return kc;
}

