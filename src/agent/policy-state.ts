import { CustomObjectsApi, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { startResilientInformer } from '../k8s/resilient-informer.js';
import { parsePeerAuthentication, type PeerAuthentication } from '../policy/peer-authentication.js';
import { coalesced } from './coalesced.js';

export interface PolicyState {
  peerAuthentications(): readonly PeerAuthentication[];
  synced: Promise<void>;
  stop(): Promise<void>;
}

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * security.warren.io policies, watched and validated: an invalid object is
 * logged once per version and left out (DESIGN.md §6), never the agent's end.
 */
export function startPolicyState(kc: KubeConfig, log: Log): PolicyState {
  const custom = kc.makeApiClient(CustomObjectsApi);
  let peerAuthentications: PeerAuthentication[] = [];
  const reported = new Set<string>();
  const rebuild = coalesced(20, () => {
    const valid: PeerAuthentication[] = [];
    for (const obj of informer.list()) {
      try {
        valid.push(parsePeerAuthentication(obj));
      } catch (err) {
        const id = `${obj.metadata?.namespace}/${obj.metadata?.name}@${obj.metadata?.resourceVersion}`;
        if (!reported.has(id)) log('invalid PeerAuthentication ignored', { policy: `${obj.metadata?.namespace}/${obj.metadata?.name}`, err: (err as Error).message });
        reported.add(id);
      }
    }
    peerAuthentications = valid;
  });
  const informer = startResilientInformer<KubernetesObject>(kc, {
    path: '/apis/security.warren.io/v1/peerauthentications',
    list: () => custom.listClusterCustomObject({ group: 'security.warren.io', version: 'v1', plural: 'peerauthentications' }) as Promise<KubernetesListObject<KubernetesObject>>,
    onChange: rebuild,
    log,
  });
  return {
    peerAuthentications: () => peerAuthentications,
    synced: informer.synced,
    async stop() {
      rebuild.cancel();
      await informer.stop();
    },
  };
}
