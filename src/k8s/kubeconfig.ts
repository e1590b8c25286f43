import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
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

/**
 * API clients made from the returned config share one keep-alive connection
 * pool. client-node 2.x builds a new undici dispatcher for every request, so
 * each call pays a TLS handshake (bench/results/sim-*.md); a node agent
 * annotating a hundred pods at once pays it a hundred times. Watches are not
 * affected: they get their connection elsewhere.
 */
export function withSharedConnections(kc: KubeConfig): KubeConfig {
  // Inherits everything from kc (files, current context); only this method differs.
  const shared = Object.create(kc) as KubeConfig;
  let dispatcher: ReturnType<RequestContext['getDispatcher']>;
  const apply = kc.applySecurityAuthentication.bind(shared);
  shared.applySecurityAuthentication = async (context) => {
    await apply(context);
    const fresh = context.getDispatcher();
    // Only undici's plain Agent (TLS options of this cluster and user) is shared; proxy dispatchers stay as client-node made them.
    if (fresh === undefined || fresh.constructor.name !== 'Agent') return;
    dispatcher ??= fresh;
    context.setDispatcher(dispatcher);
  };
  return shared;
}
