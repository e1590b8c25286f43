import type { WorkloadCertificate } from '../identity/cert-manager.js';
import type { SpiffeId } from '../identity/spiffe.js';
import type { TrustBundle } from '../identity/trust-bundle.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import type { WaypointIndex } from '../k8s/waypoint-index.js';
import type { AuthzDecision, L4Request } from '../policy/authorization.js';
import type { HboneGuard } from './hbone-limits.js';

/** What every pod's proxy shares from the agent: cluster view, identities, trust, policy hooks. */
export interface DataPlane {
  index(): ClusterIndex;
  /** which Services and workloads use which waypoint (docs/architecture.md §13) */
  waypoints(): WaypointIndex;
  trustDomain: string;
  bundle: TrustBundle;
  certificate(id: SpiffeId): WorkloadCertificate | undefined;
  /** L4 authorization (AuthorizationPolicy) of an inbound connection, tunneled or plaintext */
  authorize(request: L4Request): AuthzDecision;
  /** PeerAuthentication: may plaintext reach this pod's port? (false under STRICT) */
  plaintextAllowed(pod: { namespace: string; labels: Record<string, string> }, port: number): boolean;
  /** the node's HBONE bounds and accounting, shared by every pod's server */
  hbone: HboneGuard;
  /** a connection was refused because it would loop into the agent (agent-loop.ts): count it, log it */
  loopRefused(path: LoopPath, reason: string): void;
}

/** where a loop into the agent was caught: outbound capture, plaintext inbound capture, HBONE CONNECT */
export type LoopPath = 'outbound' | 'inbound' | 'hbone';
