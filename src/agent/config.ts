import { z } from 'zod';
import { loadConfig } from '../config/load-config.js';

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
  redirectBackend: 'WARREN_REDIRECT_BACKEND',
  excludeNamespaces: 'WARREN_EXCLUDE_NAMESPACES',
  stateDir: 'WARREN_STATE_DIR',
  drainSeconds: 'WARREN_DRAIN_SECONDS',
  readinessAddress: 'WARREN_READINESS_ADDRESS',
} as const;

const configSchema = z.strictObject({
  kubeconfig: z.string().min(1).optional(),
  nodeName: z.string({ error: 'is required (--node-name or $NODE_NAME)' }).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a node name (RFC 1123)'),
  cniConfDir: z.string().min(1).default('/etc/cni/net.d'),
  cniBinDir: z.string().min(1).default('/opt/cni/bin'),
  cniSocket: z.string().min(1).default('/var/run/warren/cni.sock'),
  redirectBackend: z.enum(['nft', 'iptables', 'auto']).default('auto'),
  excludeNamespaces: z.array(z.string().min(1)).default(['kube-system']),
  stateDir: z.string().min(1).default('/var/run/warren'),
  drainSeconds: z.coerce.number().int().min(0).max(3600).default(30),
  readinessAddress: z
    .string()
    .regex(/^[0-9a-fA-F.:]+:\d+$/, 'must be host:port')
    .default('0.0.0.0:15021'),
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
