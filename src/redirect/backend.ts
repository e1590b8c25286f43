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
  /**
   * Only the capture (REDIRECT) rules: new connections go direct at once,
   * while the reply routing stays so connections the agent already carries
   * (inbound ones with the client's address as source) can finish draining.
   * `removePod` afterwards removes the rest.
   */
  removePodCapture(netns: string): Promise<void>;
  /** Probe SNAT on the node; `netns` undefined means the caller's own netns. */
  applyNode(netns: string | undefined, spec: NodeRedirectSpec): Promise<void>;
  removeNode(netns: string | undefined): Promise<void>;
}
