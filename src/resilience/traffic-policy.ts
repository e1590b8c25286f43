import { z } from 'zod';
import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import { k8sName, objectMetadata } from './istio-fields.js';

/**
 * BackendTrafficPolicy (networking.warren.io/v1): local rate limiting in the
 * waypoint, attached by Gateway API policy attachment (`targetRefs` to a
 * Service, an HTTPRoute or the waypoint Gateway), shaped as Envoy Gateway's
 * `BackendTrafficPolicy.rateLimit.local` (docs/architecture.md §15 says why:
 * Istio has no rate-limit kind, only EnvoyFilter). One token bucket per
 * waypoint per target: `requests` per `unit` refill it, `burst` (a warren
 * field; default `requests`) is its size.
 */

export interface RateLimit {
  /** tokens added per second */
  ratePerSecond: number;
  /** bucket size */
  burst: number;
  /** as written, for x-ratelimit-limit and `warren routes` */
  requests: number;
  unit: 'Second' | 'Minute' | 'Hour';
}

export interface PolicyTargetRef {
  group: string;
  kind: 'Service' | 'HTTPRoute' | 'Gateway';
  namespace: string;
  name: string;
}

export interface BackendTrafficPolicy {
  namespace: string;
  name: string;
  generation: number;
  targets: readonly PolicyTargetRef[];
  rateLimit: RateLimit;
}

const UNIT_SECONDS = { Second: 1, Minute: 60, Hour: 3600 } as const;
const GROUP_OF = { Service: '', HTTPRoute: 'gateway.networking.k8s.io', Gateway: 'gateway.networking.k8s.io' } as const;

const targetRef = z.strictObject({ group: z.string().max(253).optional(), kind: z.enum(['Service', 'HTTPRoute', 'Gateway']), name: k8sName, sectionName: z.string().optional() });
const limit = z.strictObject({ requests: z.number().int().min(1).max(1_000_000_000), unit: z.enum(['Second', 'Minute', 'Hour']), burst: z.number().int().min(1).max(1_000_000_000).optional() });
const spec = z.strictObject({
  targetRefs: z.array(targetRef).min(1).max(16),
  rateLimit: z.strictObject({ type: z.literal('Local'), local: z.strictObject({ rules: z.array(z.strictObject({ limit })).length(1, 'exactly one rule: client selectors are not supported') }) }),
});
const object = z.object({ metadata: objectMetadata, spec });

/** Parses a BackendTrafficPolicy; ERR_TRAFFIC_POLICY_INVALID names the first bad field. */
export function parseBackendTrafficPolicy(obj: unknown): BackendTrafficPolicy {
  const parsed = object.safeParse(obj);
  if (!parsed.success) throw new WarrenError('ERR_TRAFFIC_POLICY_INVALID', describeIssue(parsed.error));
  const { metadata: m, spec: s } = parsed.data;
  for (const [i, t] of s.targetRefs.entries()) {
    if (t.group !== undefined && t.group !== GROUP_OF[t.kind] && !(t.kind === 'Service' && t.group === 'core')) throw new WarrenError('ERR_TRAFFIC_POLICY_INVALID', `spec.targetRefs.${i}.group: a ${t.kind} is in group "${GROUP_OF[t.kind]}"`);
  }
  const l = s.rateLimit.local.rules[0]!.limit;
  return {
    namespace: m.namespace,
    name: m.name,
    generation: m.generation ?? 0,
    targets: s.targetRefs.map((t) => ({ group: GROUP_OF[t.kind], kind: t.kind, namespace: m.namespace, name: t.name })),
    rateLimit: { ratePerSecond: l.requests / UNIT_SECONDS[l.unit], burst: l.burst ?? l.requests, requests: l.requests, unit: l.unit },
  };
}
