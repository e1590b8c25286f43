import { z } from 'zod';
import { durationMs } from '../config/duration.js';
import { loadConfig } from '../config/load-config.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { NODE_PORTS } from '../redirect/constants.js';

/** `warren ca` settings: flags override these environment variables. */
export const CA_ENV = {
  kubeconfig: 'KUBECONFIG',
  namespace: 'POD_NAMESPACE',
  listen: 'WARREN_CA_LISTEN',
  trustDomain: 'WARREN_TRUST_DOMAIN',
  certTtl: 'WARREN_CERT_TTL',
  allowedCallers: 'WARREN_CA_ALLOWED_CALLERS',
  caCert: 'WARREN_CA_CERT',
  caKey: 'WARREN_CA_KEY',
  rootCert: 'WARREN_ROOT_CERT',
  servingNames: 'WARREN_CA_SERVING_NAMES',
  waypointImage: 'WARREN_WAYPOINT_IMAGE',
  waypointController: 'WARREN_WAYPOINT_CONTROLLER',
} as const;

/** warren's own image: `warren waypoint-proxy` is one of its commands. */
export const DEFAULT_WAYPOINT_IMAGE = 'ghcr.io/warren-mesh/warren:0.1.0';

const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const caConfigSchema = z
  .strictObject({
    kubeconfig: z.string().min(1).optional(),
    namespace: z.string().regex(K8S_NAME, 'must be a namespace name').default('warren-system'),
    listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[0-9.]+):\d{1,5}$/, `must be ip:port (e.g. 0.0.0.0:${NODE_PORTS.ca})`).default(`0.0.0.0:${NODE_PORTS.ca}`),
    trustDomain: z.string().regex(/^[a-z0-9._-]{1,255}$/, 'must be lowercase letters, digits, dots, dashes').default(DEFAULT_TRUST_DOMAIN),
    certTtl: durationMs.prefault('24h').refine((ms) => ms >= 10_000 && ms <= 90 * 86_400_000, 'must be between 10s and 90d'),
    allowedCallers: z.array(z.string().regex(/^system:serviceaccount:[a-z0-9-]+:[a-z0-9.-]+$/, 'must be system:serviceaccount:<namespace>:<name>')).min(1).optional(),
    caCert: z.string().min(1).optional(),
    caKey: z.string().min(1).optional(),
    rootCert: z.string().min(1).optional(),
    /** extra DNS names and IPs for the CA's own serving certificate */
    servingNames: z.array(z.string().min(1)).default([]),
    /** the image waypoint Deployments run (docs/architecture.md §13) */
    waypointImage: z.string().regex(/^[^\s]+$/, 'must be an image reference').default(DEFAULT_WAYPOINT_IMAGE),
    /** run the waypoint controller in this process (off: another process runs it, or no waypoints) */
    waypointController: z.enum(['on', 'off']).default('on'),
  })
  .refine((c) => (c.caCert === undefined) === (c.caKey === undefined), { path: ['caKey'], message: '--ca-cert and --ca-key go together' })
  .refine((c) => c.rootCert === undefined || c.caCert !== undefined, { path: ['rootCert'], message: 'only with --ca-cert/--ca-key' });

export type CaConfig = Omit<z.infer<typeof caConfigSchema>, 'allowedCallers'> & { allowedCallers: string[] };

export function loadCaConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): CaConfig {
  const fromEnv = Object.fromEntries(Object.entries(CA_ENV).map(([key, name]) => [key, env[name]]));
  const parsed = loadConfig(caConfigSchema, flags, fromEnv, ['allowedCallers', 'servingNames']);
  // The node agents' service account lives in the CA's own namespace unless configured.
  return { ...parsed, allowedCallers: parsed.allowedCallers ?? [`system:serviceaccount:${parsed.namespace}:warren-node`] };
}
