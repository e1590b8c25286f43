import type { WorkloadCertificate } from '../identity/cert-manager.js';
import type { SpiffeId } from '../identity/spiffe.js';
import type { TrustBundle } from '../identity/trust-bundle.js';
import type { ClusterIndex } from '../k8s/cluster-index.js';
import type { AuthzDecision, L4Request } from '../policy/authorization.js';

/** What every pod's proxy shares from the agent: cluster view, identities, trust, policy hooks. */
export interface DataPlane {
  index(): ClusterIndex;
  trustDomain: string;
  bundle: TrustBundle;
  certificate(id: SpiffeId): WorkloadCertificate | undefined;
  /** L4 authorization (AuthorizationPolicy) of an inbound connection, tunneled or plaintext */
  authorize(request: L4Request): AuthzDecision;
  /** PeerAuthentication: may plaintext reach this pod's port? (false under STRICT) */
  plaintextAllowed(pod: { namespace: string; labels: Record<string, string> }, port: number): boolean;
}
