import { z } from 'zod';
import { loadConfig } from '../config/load-config.js';
import { durationMs } from '../config/duration.js';
import { isBlock } from '../policy/ip-blocks.js';

/**
 * `warren waypoint-proxy` configuration: one schema; flags and WARREN_*
 * environment variables map onto it (flags win), defaults are what the
 * waypoint pod needs (docs/architecture.md §14).
 */
export const WAYPOINT_ENV = {
  kubeconfig: 'KUBECONFIG',
  name: 'WARREN_WAYPOINT_NAME',
  namespace: 'WARREN_WAYPOINT_NAMESPACE',
  listenAddress: 'WARREN_WAYPOINT_LISTEN_ADDRESS',
  listenPort: 'WARREN_WAYPOINT_LISTEN_PORT',
  adminPort: 'WARREN_WAYPOINT_ADMIN_PORT',
  readinessPort: 'WARREN_WAYPOINT_READINESS_PORT',
  adminAddress: 'WARREN_WAYPOINT_ADMIN_ADDRESS',
  trustedSources: 'WARREN_WAYPOINT_TRUSTED_SOURCES',
  clusterDomain: 'WARREN_CLUSTER_DOMAIN',
  rootNamespace: 'WARREN_ROOT_NAMESPACE',
  otlpEndpoint: 'WARREN_OTLP_ENDPOINT',
  logLevel: 'WARREN_LOG_LEVEL',
  accessLogLevel: 'WARREN_ACCESS_LOG_LEVEL',
  maxHeaderBytes: 'WARREN_WAYPOINT_MAX_HEADER_BYTES',
  maxRetryBodyBytes: 'WARREN_WAYPOINT_MAX_RETRY_BODY_BYTES',
  connectTimeout: 'WARREN_WAYPOINT_CONNECT_TIMEOUT',
  protocolDetectionTimeout: 'WARREN_WAYPOINT_PROTOCOL_DETECTION_TIMEOUT',
} as const;

const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a Kubernetes name (RFC 1123 label)').max(63);
/** 0: the kernel picks one (the ready log line says which); tests run several waypoints on one host */
const port = z.coerce.number().int().min(0).max(65535);

const schema = z.strictObject({
  kubeconfig: z.string().min(1).optional(),
  name: z.string({ error: 'is required (--name or $WARREN_WAYPOINT_NAME): the Gateway this waypoint serves' }).pipe(k8sName),
  namespace: z.string({ error: 'is required (--namespace or $WARREN_WAYPOINT_NAMESPACE)' }).pipe(k8sName),
  listenAddress: z.string().regex(/^[0-9a-fA-F.:]+$/, 'must be an IP address').default('0.0.0.0'),
  listenPort: port.default(15088),
  adminPort: port.default(15020),
  readinessPort: port.default(15021),
  /** admin and readiness listen here: 0.0.0.0 so the kubelet's probe and Prometheus reach them */
  adminAddress: z.string().regex(/^[0-9a-fA-F.:]+$/, 'must be an IP address').default('0.0.0.0'),
  /** who may connect to the PROXY port: the node agent hands streams over from inside the pod (loopback) */
  trustedSources: z.array(z.string().refine(isBlock, 'must be an IP address or CIDR block')).min(1).default(['127.0.0.0/8', '::1/128']),
  clusterDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS domain').default('cluster.local'),
  rootNamespace: k8sName.default('warren-system'),
  otlpEndpoint: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL, e.g. http://otel-collector:4318/v1/traces' }).optional(),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  accessLogLevel: z.enum(['trace', 'debug', 'info', 'warn', 'off']).default('info'),
  /** request line plus headers; beyond it the client gets 431 */
  maxHeaderBytes: z.coerce.number().int().min(1024).max(1_048_576).default(61_440),
  /** request bodies up to this size are kept for a retry; bigger ones are streamed and never retried */
  maxRetryBodyBytes: z.coerce.number().int().min(0).max(16_777_216).default(65_536),
  connectTimeout: durationMs.prefault('5s').refine((ms) => ms >= 10 && ms <= 60_000, 'must be between 10ms and 1m'),
  protocolDetectionTimeout: durationMs.prefault('500ms').refine((ms) => ms >= 1 && ms <= 10_000, 'must be between 1ms and 10s'),
});

export type WaypointConfig = z.infer<typeof schema>;
export type RawWaypointConfig = Partial<Record<keyof z.infer<typeof schema>, unknown>>;

export function loadWaypointConfig(flags: RawWaypointConfig, env: NodeJS.ProcessEnv): WaypointConfig {
  const fromEnv = Object.fromEntries(Object.entries(WAYPOINT_ENV).map(([key, name]) => [key, env[name]]));
  return loadConfig(schema, flags, fromEnv, ['trustedSources']);
}
