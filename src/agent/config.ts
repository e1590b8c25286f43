import { z } from 'zod';
import { loadConfig } from '../config/load-config.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { durationMs, formatDurationMs } from '../config/duration.js';
import { DEFAULT_HBONE_LIMITS, type HboneLimits } from '../tunnel/hbone-limits.js';

/**
 * `warren node` configuration: one schema, flags and WARREN_* environment
 * variables map onto it (flags win), defaults are what a DaemonSet needs.
 */
export const ENV = {
  kubeconfig: 'KUBECONFIG',
  nodeName: 'NODE_NAME',
  cniConfDir: 'WARREN_CNI_CONF_DIR',
  cniBinDir: 'WARREN_CNI_BIN_DIR',
  cniSocket: 'WARREN_CNI_SOCKET',
  cniPluginBinary: 'WARREN_CNI_PLUGIN_BINARY',
  redirectBackend: 'WARREN_REDIRECT_BACKEND',
  excludeNamespaces: 'WARREN_EXCLUDE_NAMESPACES',
  stateDir: 'WARREN_STATE_DIR',
  drainSeconds: 'WARREN_DRAIN_SECONDS',
  dataplane: 'WARREN_DATAPLANE',
  dataplaneThreads: 'WARREN_DATAPLANE_THREADS',
  readinessAddress: 'WARREN_READINESS_ADDRESS',
  adminAddress: 'WARREN_ADMIN_ADDRESS',
  metricsAddress: 'WARREN_METRICS_ADDRESS',
  caAddress: 'WARREN_CA_ADDRESS',
  caTokenFile: 'WARREN_CA_TOKEN_FILE',
  systemNamespace: 'POD_NAMESPACE',
  rootNamespace: 'WARREN_ROOT_NAMESPACE',
  trustDomain: 'WARREN_TRUST_DOMAIN',
  clusterDomain: 'WARREN_CLUSTER_DOMAIN',
  logLevel: 'WARREN_LOG_LEVEL',
  accessLogLevel: 'WARREN_ACCESS_LOG_LEVEL',
  hboneMaxConnectionsPerPeer: 'WARREN_HBONE_MAX_CONNECTIONS_PER_PEER',
  hboneMaxConnections: 'WARREN_HBONE_MAX_CONNECTIONS',
  hboneHandshakeTimeout: 'WARREN_HBONE_HANDSHAKE_TIMEOUT',
  hboneStreamIdleTimeout: 'WARREN_HBONE_STREAM_IDLE_TIMEOUT',
  hboneStreamBufferBytes: 'WARREN_HBONE_STREAM_BUFFER_BYTES',
} as const;

const namespace = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name');
const hostPort = z.string().regex(/^[0-9a-fA-F.:]+:\d+$/, 'must be host:port');

const configSchema = z.strictObject({
  kubeconfig: z.string().min(1).optional(),
  nodeName: z.string({ error: 'is required (--node-name or $NODE_NAME)' }).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a node name (RFC 1123)'),
  cniConfDir: z.string().min(1).default('/etc/cni/net.d'),
  cniBinDir: z.string().min(1).default('/opt/cni/bin'),
  cniSocket: z.string().min(1).default('/var/run/warren/cni.sock'),
  /** the static plugin executable to install; unset: build/Release/warren-cni of this package */
  cniPluginBinary: z.string().regex(/^\//, 'must be an absolute path').optional(),
  redirectBackend: z.enum(['nft', 'iptables', 'auto']).default('auto'),
  excludeNamespaces: z.array(z.string().min(1)).default(['kube-system']),
  stateDir: z.string().min(1).default('/var/run/warren'),
  drainSeconds: z.coerce.number().int().min(0).max(3600).default(30),
  /** node: node:tls/node:http2 in this thread; native: the addon's worker threads (DESIGN.md §12) */
  dataplane: z.enum(['node', 'native']).default('node'),
  /** native data path worker threads; unset: one per core */
  dataplaneThreads: z.coerce.number().int().min(1).max(64).optional(),
  readinessAddress: hostPort.default('0.0.0.0:15021'),
  adminAddress: hostPort.default('127.0.0.1:15000'),
  metricsAddress: hostPort.default('0.0.0.0:15020'),
  caAddress: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }).default('https://warren-ca.warren-system.svc:15012'),
  caTokenFile: z.string().min(1).default('/var/run/secrets/tokens/warren-ca-token'),
  systemNamespace: namespace.default('warren-system'),
  /** mesh-wide policies live here (Istio's root namespace); not necessarily where the agent runs */
  rootNamespace: namespace.default('warren-system'),
  trustDomain: z.string().regex(/^[a-z0-9._-]{1,255}$/, 'must be lowercase letters, digits, dots, dashes').default(DEFAULT_TRUST_DOMAIN),
  clusterDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS domain').default('cluster.local'),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** the level access log lines are written at; "off" writes none */
  accessLogLevel: z.enum(['trace', 'debug', 'info', 'warn', 'off']).default('info'),
  // HBONE bounds (src/tunnel/hbone-limits.ts): what one peer may cost this node.
  hboneMaxConnectionsPerPeer: z.coerce.number().int().min(1).default(DEFAULT_HBONE_LIMITS.maxConnectionsPerPeer),
  hboneMaxConnections: z.coerce.number().int().min(1).default(DEFAULT_HBONE_LIMITS.maxConnections),
  hboneHandshakeTimeout: durationMs.prefault(formatDurationMs(DEFAULT_HBONE_LIMITS.handshakeTimeoutMs)).refine((ms) => ms >= 100 && ms <= 120_000, 'must be between 100ms and 2m'),
  hboneStreamIdleTimeout: durationMs.prefault(formatDurationMs(DEFAULT_HBONE_LIMITS.streamIdleTimeoutMs)).refine((ms) => ms >= 1000, 'must be at least 1s'),
  // HTTP/2 allows windows from 65 535 bytes to 2^31 - 1.
  hboneStreamBufferBytes: z.coerce.number().int().min(65_535).max(2 ** 31 - 1).default(DEFAULT_HBONE_LIMITS.streamBufferBytes),
  installCni: z.boolean().default(true),
  uninstall: z.boolean().default(false),
});
export type NodeAgentConfig = z.infer<typeof configSchema>;

export type RawConfig = Partial<Record<keyof NodeAgentConfig, unknown>>;

/** Flags over environment over defaults; an invalid value is an error naming the flag. */
export function loadNodeAgentConfig(flags: RawConfig, env: NodeJS.ProcessEnv): NodeAgentConfig {
  const fromEnv = Object.fromEntries(Object.entries(ENV).map(([key, name]) => [key, env[name]]));
  return loadConfig(configSchema, flags, fromEnv, ['excludeNamespaces']);
}

/** The HBONE bounds of this configuration, as the data path takes them. */
export function hboneLimits(config: NodeAgentConfig): HboneLimits {
  return {
    maxConnectionsPerPeer: config.hboneMaxConnectionsPerPeer,
    maxConnections: config.hboneMaxConnections,
    handshakeTimeoutMs: config.hboneHandshakeTimeout,
    streamIdleTimeoutMs: config.hboneStreamIdleTimeout,
    streamBufferBytes: config.hboneStreamBufferBytes,
  };
}
