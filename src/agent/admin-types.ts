import type { CertificateStatus } from '../identity/cert-manager.js';
import type { AuthorizationPolicy } from '../policy/authorization.js';
import type { ConnectionExplanation } from '../policy/explain.js';
import type { MtlsMode } from '../policy/peer-authentication.js';

/**
 * The admin API's answers (docs/architecture.md §7), as the agent writes them
 * (admin-api.ts) and the CLI reads them (src/cli): one definition, so a
 * change on one side fails to compile on the other.
 */
export interface AdminWorkload {
  pod: string;
  uid: string;
  ips: string[];
  /** spiffe://… */
  identity: string;
  netns: string;
}

export interface AdminService {
  /** namespace/name */
  service: string;
  vips: string[];
  port: number;
  /** ip:port of ready endpoints */
  endpoints: string[];
  waypoint?: string;
}

export interface AdminAuthorizationPolicy {
  policy: string;
  action: AuthorizationPolicy['action'];
  selector: Record<string, string> | null;
  rules: number;
  httpFields: readonly string[];
  dryRun: boolean;
  targeted: boolean;
  invalid?: string;
}

export interface AdminPeerAuthentication {
  policy: string;
  mode: MtlsMode;
  selector: Record<string, string> | null;
  portLevel: Record<string, MtlsMode>;
}

export interface AdminPolicies {
  authorizationPolicies: AdminAuthorizationPolicy[];
  peerAuthentications: AdminPeerAuthentication[];
}

export interface AdminCerts {
  node: string;
  trustDomain: string;
  caAddress: string;
  trustBundleRoots: number;
  certificates: CertificateStatus[];
}

export interface AdminConnections {
  pod: string;
  captured: number;
  plaintextInbound: number;
  inboundStreams: number;
  outboundTunnels: Array<{ key: string; connections: number; streams: number }>;
}

export interface AdminStatus {
  node: string;
  backend: string;
  enrolled: number;
  certificates: { count: number; valid: number; soonestExpiry: string | null };
  policies: { authorization: number; peerAuthentication: number };
  /** each proxied leg once: captured connections and inbound HBONE streams */
  connections: number;
  /** Services whose waypoint cannot take their traffic (absent from agents older than the waypoint) */
  waypoints?: Array<{ service: string; waypoint: string; problem: string }>;
}

/** What each GET path answers with 200. */
export interface AdminAnswers {
  '/workloads': { node: string; enrolled: AdminWorkload[]; clusterWorkloads: number };
  '/services': AdminService[];
  '/policies': AdminPolicies;
  '/certs': AdminCerts;
  '/connections': AdminConnections[];
  '/status': AdminStatus;
  '/explain': ConnectionExplanation;
}
