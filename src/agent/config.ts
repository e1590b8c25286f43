import { z } from 'zod';
import { loadConfig } from '../config/load-config.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { durationMs, formatDurationMs } from '../config/duration.js';
import { DEFAULT_HBONE_LIMITS, type HboneLimits } from '../tunnel/hbone-limits.js';
import { NODE_PORTS } from '../redirect/constants.js';

export interface Setting {
  /** the environment variable; none for the two actions (--no-install-cni, --uninstall) */
  env?: string;
  /** the value's placeholder in --help; none for a boolean flag */
  arg?: string;
  help: string;
  /** the default as people read it, where it is not the schema's (required, computed) */
  shown?: string;
  /** the flag, where it is not the key in kebab case */
  flag?: string;
  /** shown as a duration (5s, 1h) */
  duration?: true;
}

/**
 * `warren node` configuration, one entry per setting: its environment
 * variable, flag and help here, its type and default in the schema below.
 * The CLI's flags and --help and the README's table are derived from (and
 * tested against) these. Flags over environment variables over defaults,
 * which are what a DaemonSet needs.
 */
export const SETTINGS = {
  kubeconfig: { env: 'KUBECONFIG', arg: 'FILE', help: 'API server credentials', shown: 'in-cluster' },
  nodeName: { env: 'NODE_NAME', arg: 'NAME', help: 'this node', shown: 'required' },
  cniConfDir: { env: 'WARREN_CNI_CONF_DIR', arg: 'DIR', help: 'CNI network configs' },
  cniBinDir: { env: 'WARREN_CNI_BIN_DIR', arg: 'DIR', help: 'CNI plugin binaries' },
  cniSocket: { env: 'WARREN_CNI_SOCKET', arg: 'PATH', help: 'unix socket the plugin calls' },
  cniPluginBinary: { env: 'WARREN_CNI_PLUGIN_BINARY', arg: 'FILE', help: 'static warren-cni executable copied into the CNI bin dir', shown: 'build/Release/warren-cni of this package, built by node-gyp at install' },
  redirectBackend: { env: 'WARREN_REDIRECT_BACKEND', arg: 'B', help: 'nft | iptables | auto' },
  excludeNamespaces: { env: 'WARREN_EXCLUDE_NAMESPACES', arg: 'A,B', help: 'never enrolled' },
  stateDir: { env: 'WARREN_STATE_DIR', arg: 'DIR', help: 'agent state' },
  drainSeconds: { env: 'WARREN_DRAIN_SECONDS', arg: 'N', help: "unenrolled pods' open connections may finish for N s" },
  dataplane: { env: 'WARREN_DATAPLANE', arg: 'node|native', help: "what moves pods' bytes: node:tls/node:http2 on the event loop, or the native data path's worker threads (the default: more throughput, less CPU and memory per connection; README Performance)" },
  dataplaneThreads: { env: 'WARREN_DATAPLANE_THREADS', arg: 'N', help: 'native data path worker threads', shown: 'one per core' },
  readinessAddress: { env: 'WARREN_READINESS_ADDRESS', arg: 'H:P', help: '/healthz/ready' },
  metricsAddress: { env: 'WARREN_METRICS_ADDRESS', arg: 'H:P', help: 'Prometheus /metrics' },
  adminAddress: { env: 'WARREN_ADMIN_ADDRESS', arg: 'H:P', help: 'admin API: /certs' },
  caAddress: { env: 'WARREN_CA_ADDRESS', arg: 'URL', help: 'warren ca' },
  caTokenFile: { env: 'WARREN_CA_TOKEN_FILE', arg: 'FILE', help: 'service account token for the CA' },
  systemNamespace: { env: 'POD_NAMESPACE', arg: 'NS', help: 'where ConfigMap warren-ca-root is read' },
  rootNamespace: { env: 'WARREN_ROOT_NAMESPACE', arg: 'NS', help: 'mesh-wide AuthorizationPolicy and PeerAuthentication live here' },
  trustDomain: { env: 'WARREN_TRUST_DOMAIN', arg: 'TD', help: 'SPIFFE trust domain' },
  clusterDomain: { env: 'WARREN_CLUSTER_DOMAIN', arg: 'D', help: 'DNS domain in destination_service labels' },
  logLevel: { env: 'WARREN_LOG_LEVEL', arg: 'L', help: 'trace | debug | info | warn | error | fatal' },
  accessLogLevel: { env: 'WARREN_ACCESS_LOG_LEVEL', arg: 'L', help: 'level of the per-connection access log lines, or off' },
  hboneMaxConnectionsPerPeer: { env: 'WARREN_HBONE_MAX_CONNECTIONS_PER_PEER', arg: 'N', help: "HBONE connections one peer IP may hold to this node's pods" },
  hboneMaxConnections: { env: 'WARREN_HBONE_MAX_CONNECTIONS', arg: 'N', help: "HBONE connections to this node's pods in total" },
  hboneHandshakeTimeout: { env: 'WARREN_HBONE_HANDSHAKE_TIMEOUT', arg: 'D', help: 'an HBONE TLS handshake must finish within D', duration: true },
  hboneStreamIdleTimeout: { env: 'WARREN_HBONE_STREAM_IDLE_TIMEOUT', arg: 'D', help: 'an HBONE stream idle for D is reset', duration: true },
  hboneStreamBufferBytes: { env: 'WARREN_HBONE_STREAM_BUFFER_BYTES', arg: 'N', help: 'bytes one HBONE stream may hold in the agent: its HTTP/2 window' },
  installCni: { flag: 'no-install-cni', help: 'do not install or watch the CNI plugin' },
  uninstall: {
    help: 'remove what the agent put on this node (every rule, the CNI entry and plugin, its socket, its pod annotations), then exit; run it once the agent is stopped (deploy/uninstall/README.md)',
  },
} as const satisfies Record<string, Setting>;

type EnvKey = { [K in keyof typeof SETTINGS]: (typeof SETTINGS)[K] extends { env: string } ? K : never }[keyof typeof SETTINGS];

/** The environment variable of each setting that has one. */
export const ENV = Object.fromEntries(Object.entries(SETTINGS).flatMap(([key, s]) => ('env' in s ? [[key, s.env]] : []))) as { readonly [K in EnvKey]: (typeof SETTINGS)[K]['env'] };

/** A setting's flag: --no-install-cni, or the key in kebab case (cniConfDir → --cni-conf-dir). */
export function settingFlag(key: keyof typeof SETTINGS): string {
  const s: Setting = SETTINGS[key];
  return `--${s.flag ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** A setting's default as --help and the README show it. */
export function settingDefault(key: keyof typeof SETTINGS): string | undefined {
  const s: Setting = SETTINGS[key];
  if (s.shown !== undefined) return s.shown;
  if (s.arg === undefined) return undefined;
  const value: unknown = configSchema.shape[key].parse(undefined);
  if (Array.isArray(value)) return value.join(',');
  if (s.duration) return formatDurationMs(value as number);
  return String(value);
}

const namespace = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name');
const hostPort = z.string().regex(/^[0-9a-fA-F.:]+:\d+$/, 'must be host:port');
/** node: node:tls/node:http2 in this thread; native: the addon's worker threads (docs/architecture.md §2) */
export const dataplaneName = z.enum(['node', 'native']);

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
  dataplane: dataplaneName.default('native'),
  /** native data path worker threads; unset: one per core */
  dataplaneThreads: z.coerce.number().int().min(1).max(64).optional(),
  readinessAddress: hostPort.default(`0.0.0.0:${NODE_PORTS.readiness}`),
  adminAddress: hostPort.default(`127.0.0.1:${NODE_PORTS.admin}`),
  metricsAddress: hostPort.default(`0.0.0.0:${NODE_PORTS.metrics}`),
  caAddress: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }).default(`https://warren-ca.warren-system.svc:${NODE_PORTS.ca}`),
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

/** The upgrade hand-off socket (docs/architecture.md §4, "Agent upgrade"): in the state dir, which uninstall removes. */
export const handoffSocketPath = (config: NodeAgentConfig): string => `${config.stateDir}/handoff.sock`;
