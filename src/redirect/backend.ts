import type { NodeRedirectSpec, PodRedirectInput } from './spec.js';

export type BackendName = 'nft' | 'iptables';

/**
 * Programs and removes warren's rules. Both implementations pass one shared
 * test suite: applying twice changes nothing, removing restores the netns's
 * ruleset exactly, and a failed apply leaves nothing half-applied.
 */
export interface RedirectBackend {
  readonly name: BackendName;
  /** Pod rules + policy routing inside the pod's netns (a netns file path). */
  applyPod(netns: string, spec: PodRedirectInput): Promise<void>;
  removePod(netns: string): Promise<void>;
  /** Probe SNAT on the node; `netns` undefined means the caller's own netns. */
  applyNode(netns: string | undefined, spec: NodeRedirectSpec): Promise<void>;
  removeNode(netns: string | undefined): Promise<void>;
}
