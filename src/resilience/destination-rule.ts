import { z } from 'zod';
import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import { istioDuration, objectMetadata } from './istio-fields.js';

/**
 * Istio's DestinationRule (networking.warren.io/v1, Istio's field names) as
 * the waypoint applies it (docs/architecture.md §15): connection pool limits,
 * outlier detection, load balancing and subsets. Parsed strictly: a field
 * warren does not implement is an error naming it, never silently ignored.
 */

export interface ConnectionPool {
  maxConnections: number;
  http1MaxPendingRequests: number;
  http2MaxRequests: number;
  /** 0: unlimited */
  maxRequestsPerConnection: number;
  maxRetries: number;
}

export interface OutlierPolicy {
  consecutive5xxErrors: number;
  consecutiveGatewayErrors: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
  minHealthPercent: number;
}

export type LoadBalancer = { simple: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' } | { consistentHashHeader: string };

export interface TrafficPolicy {
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierPolicy;
  loadBalancer?: LoadBalancer;
  /** per service port: replaces the rule's own settings for that port (Istio: portLevelSettings) */
  ports: ReadonlyMap<number, Omit<TrafficPolicy, 'ports'>>;
}

export interface Subset {
  name: string;
  labels: Readonly<Record<string, string>>;
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationRule {
  namespace: string;
  name: string;
  generation: number;
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets: readonly Subset[];
}

/** Envoy's defaults for an unset limit (Istio leaves them to Envoy). */
const UNLIMITED = 4_294_967_295;
const count = z.number().int().min(0).max(UNLIMITED);
const positive = z.number().int().min(1).max(UNLIMITED);

const connectionPool = z.strictObject({
  tcp: z.strictObject({ maxConnections: positive.optional(), connectTimeout: istioDuration.optional() }).optional(),
  http: z
    .strictObject({
      http1MaxPendingRequests: positive.optional(),
      http2MaxRequests: positive.optional(),
      maxRequestsPerConnection: count.optional(),
      maxRetries: count.optional(),
    })
    .optional(),
});
const outlierDetection = z.strictObject({
  consecutive5xxErrors: count.optional(),
  consecutiveGatewayErrors: count.optional(),
  interval: istioDuration.optional(),
  baseEjectionTime: istioDuration.optional(),
  maxEjectionPercent: z.number().int().min(0).max(100).optional(),
  minHealthPercent: z.number().int().min(0).max(100).optional(),
});
const loadBalancer = z
  .strictObject({
    simple: z.enum(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM']).optional(),
    consistentHash: z.strictObject({ httpHeaderName: z.string().regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$/, 'must be an HTTP header name') }).optional(),
  })
  .refine((lb) => (lb.simple === undefined) !== (lb.consistentHash === undefined), 'set exactly one of simple and consistentHash');
const trafficPolicyFields = { connectionPool: connectionPool.optional(), outlierDetection: outlierDetection.optional(), loadBalancer: loadBalancer.optional() };
const portLevel = z.strictObject({ port: z.strictObject({ number: z.number().int().min(1).max(65535) }), ...trafficPolicyFields });
const trafficPolicy = z.strictObject({ ...trafficPolicyFields, portLevelSettings: z.array(portLevel).max(64).optional() });
const labelValue = z.string().max(63);
const spec = z.strictObject({
  host: z.string().min(1).max(253),
  trafficPolicy: trafficPolicy.optional(),
  subsets: z
    .array(z.strictObject({ name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label').max(63), labels: z.record(z.string().min(1).max(317), labelValue), trafficPolicy: trafficPolicy.optional() }))
    .max(64)
    .optional(),
  exportTo: z.array(z.string()).optional(),
});
const object = z.object({ metadata: objectMetadata, spec });

type Fields = { connectionPool?: z.infer<typeof connectionPool> | undefined; outlierDetection?: z.infer<typeof outlierDetection> | undefined; loadBalancer?: z.infer<typeof loadBalancer> | undefined };

function compileFields(f: Fields): Omit<TrafficPolicy, 'ports'> {
  const cp = f.connectionPool;
  const od = f.outlierDetection;
  const lb = f.loadBalancer;
  return {
    ...(cp
      ? {
          connectionPool: {
            maxConnections: cp.tcp?.maxConnections ?? UNLIMITED,
            http1MaxPendingRequests: cp.http?.http1MaxPendingRequests ?? UNLIMITED,
            http2MaxRequests: cp.http?.http2MaxRequests ?? UNLIMITED,
            maxRequestsPerConnection: cp.http?.maxRequestsPerConnection ?? 0,
            maxRetries: cp.http?.maxRetries ?? UNLIMITED,
          },
        }
      : {}),
    // Istio's defaults: 5 consecutive 5xx, gateway errors off, 10s interval, 30s base ejection, 10 %, 0 %.
    ...(od
      ? {
          outlierDetection: {
            consecutive5xxErrors: od.consecutive5xxErrors ?? 5,
            consecutiveGatewayErrors: od.consecutiveGatewayErrors ?? 0,
            intervalMs: od.interval ?? 10_000,
            baseEjectionTimeMs: od.baseEjectionTime ?? 30_000,
            maxEjectionPercent: od.maxEjectionPercent ?? 10,
            minHealthPercent: od.minHealthPercent ?? 0,
          },
        }
      : {}),
    ...(lb ? { loadBalancer: lb.consistentHash ? { consistentHashHeader: lb.consistentHash.httpHeaderName.toLowerCase() } : { simple: lb.simple! } } : {}),
  };
}

function compilePolicy(p: z.infer<typeof trafficPolicy>): TrafficPolicy {
  const ports = new Map<number, Omit<TrafficPolicy, 'ports'>>();
  for (const s of p.portLevelSettings ?? []) ports.set(s.port.number, compileFields(s));
  return { ...compileFields(p), ports };
}

/** Parses a DestinationRule object; ERR_DESTINATION_RULE_INVALID names the first bad field. */
export function parseDestinationRule(obj: unknown): DestinationRule {
  const parsed = object.safeParse(obj);
  if (!parsed.success) throw new WarrenError('ERR_DESTINATION_RULE_INVALID', describeIssue(parsed.error));
  const { metadata: m, spec: s } = parsed.data;
  const names = new Set<string>();
  for (const [i, sub] of (s.subsets ?? []).entries()) {
    if (names.has(sub.name)) throw new WarrenError('ERR_DESTINATION_RULE_INVALID', `spec.subsets.${i}.name: subset "${sub.name}" is defined twice`);
    names.add(sub.name);
  }
  return {
    namespace: m.namespace,
    name: m.name,
    generation: m.generation ?? 0,
    host: s.host,
    ...(s.trafficPolicy ? { trafficPolicy: compilePolicy(s.trafficPolicy) } : {}),
    subsets: (s.subsets ?? []).map((sub) => ({ name: sub.name, labels: sub.labels, ...(sub.trafficPolicy ? { trafficPolicy: compilePolicy(sub.trafficPolicy) } : {}) })),
  };
}

/**
 * The settings for one port of a host (and subset): the subset's over the
 * rule's, a port-level setting over its level's, field by field as Istio merges them.
 */
export function effectivePolicy(dr: DestinationRule, port: number, subset?: string): Omit<TrafficPolicy, 'ports'> {
  const level = (p: TrafficPolicy | undefined): Omit<TrafficPolicy, 'ports'> => (p === undefined ? {} : { ...withoutPorts(p), ...(p.ports.get(port) ?? {}) });
  const sub = subset === undefined ? undefined : dr.subsets.find((s) => s.name === subset);
  return { ...level(dr.trafficPolicy), ...level(sub?.trafficPolicy) };
}

function withoutPorts(p: TrafficPolicy): Omit<TrafficPolicy, 'ports'> {
  const { ports: _ports, ...rest } = p;
  return rest;
}
