import { Agent } from 'node:https';
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

/**
 * API clients made from the returned config share one keep-alive HTTPS
 * agent. client-node 1.4 builds a new agent for every request, so each call
 * pays a TLS handshake (bench/results/sim-*.md); a node agent annotating a
 * hundred pods at once pays it a hundred times. Watches are not affected:
 * they get their agent elsewhere.
 */
export function withSharedConnections(kc: KubeConfig): KubeConfig {
  // Inherits everything from kc (files, current context); only this method differs.
  const shared = Object.create(kc) as KubeConfig;
  let agent: Agent | undefined;
  const apply = kc.applySecurityAuthentication.bind(shared);
  shared.applySecurityAuthentication = async (context) => {
    await apply(context);
    const fresh = context.getAgent();
    // Only a plain HTTPS agent is replaced; proxy agents stay as client-node made them.
    if (!(fresh instanceof Agent) || fresh.constructor !== Agent) return;
    agent ??= new Agent({ ...fresh.options, keepAlive: true, maxSockets: 16, scheduling: 'lifo' });
    context.setAgent(agent);
  };
  return shared;
}
