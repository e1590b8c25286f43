import { z } from 'zod';
import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import { linearRegex } from '../waypoint/linear-regex.js';
import { istioDuration, objectMetadata, percentage } from './istio-fields.js';

/**
 * Istio's VirtualService (networking.warren.io/v1), only what fault
 * injection and simple routing need (docs/architecture.md §15): `http[]`
 * with header `match`, `fault` (delay, abort) and `route` to a host/subset
 * with weights. Anything else is an error naming the field.
 */

export type StringMatch = { kind: 'exact' | 'prefix'; value: string } | { kind: 'regex'; value: string; re: RegExp };

export interface Fault {
  delay?: { ms: number; percent: number };
  abort?: ({ httpStatus: number } | { grpcStatus: string }) & { percent: number };
}

export interface VirtualServiceRoute {
  destination: { host: string; subset?: string; port?: number };
  weight: number;
}

export interface VirtualServiceHttp {
  name?: string;
  /** any one match entry selects the rule; within one, every header must match; [] matches all */
  match: ReadonlyArray<ReadonlyArray<{ name: string; match: StringMatch }>>;
  fault?: Fault;
  route: readonly VirtualServiceRoute[];
}

export interface VirtualService {
  namespace: string;
  name: string;
  generation: number;
  hosts: readonly string[];
  http: readonly VirtualServiceHttp[];
}

const stringMatch = z
  .strictObject({ exact: z.string().max(4096).optional(), prefix: z.string().max(4096).optional(), regex: z.string().max(1024).optional() })
  .refine((m) => [m.exact, m.prefix, m.regex].filter((v) => v !== undefined).length === 1, 'set exactly one of exact, prefix and regex');
/** gRPC status names as Istio's abort.grpcStatus takes them. */
export const GRPC_STATUS = ['CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'] as const;
const fault = z.strictObject({
  delay: z.strictObject({ fixedDelay: istioDuration, percentage: percentage.optional() }).optional(),
  abort: z
    .strictObject({ httpStatus: z.number().int().min(200).max(599).optional(), grpcStatus: z.enum(GRPC_STATUS).optional(), percentage: percentage.optional() })
    .refine((a) => (a.httpStatus === undefined) !== (a.grpcStatus === undefined), 'set exactly one of httpStatus and grpcStatus')
    .optional(),
});
const destination = z.strictObject({ host: z.string().min(1).max(253), subset: z.string().min(1).max(63).optional(), port: z.strictObject({ number: z.number().int().min(1).max(65535) }).optional() });
const http = z.strictObject({
  name: z.string().max(253).optional(),
  match: z.array(z.strictObject({ name: z.string().max(253).optional(), headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$/, 'must be an HTTP header name'), stringMatch).optional() })).max(16).optional(),
  fault: fault.optional(),
  route: z.array(z.strictObject({ destination, weight: z.number().int().min(0).max(100).optional() })).min(1).max(16),
});
const spec = z.strictObject({ hosts: z.array(z.string().min(1).max(253)).min(1).max(16), http: z.array(http).min(1).max(64), exportTo: z.array(z.string()).optional() });
const object = z.object({ metadata: objectMetadata, spec });

function compileMatch(m: z.infer<typeof stringMatch>, field: string): StringMatch {
  if (m.exact !== undefined) return { kind: 'exact', value: m.exact };
  if (m.prefix !== undefined) return { kind: 'prefix', value: m.prefix };
  try {
    return { kind: 'regex', value: m.regex!, re: linearRegex(m.regex!) };
  } catch (err) {
    throw new WarrenError('ERR_VIRTUAL_SERVICE_INVALID', `${field}.regex: ${(err as Error).message} (backreferences and lookaround are not supported)`);
  }
}

/** Parses a VirtualService object; ERR_VIRTUAL_SERVICE_INVALID names the first bad field. */
export function parseVirtualService(obj: unknown): VirtualService {
  const parsed = object.safeParse(obj);
  const bad = (message: string): WarrenError => new WarrenError('ERR_VIRTUAL_SERVICE_INVALID', message);
  if (!parsed.success) throw bad(describeIssue(parsed.error));
  const { metadata: m, spec: s } = parsed.data;
  return {
    namespace: m.namespace,
    name: m.name,
    generation: m.generation ?? 0,
    hosts: s.hosts,
    http: s.http.map((h, i) => {
      const match = (h.match ?? []).map((mm, j) =>
        Object.entries(mm.headers ?? {}).map(([name, sm]) => ({ name: name.toLowerCase(), match: compileMatch(sm, `spec.http.${i}.match.${j}.headers.${name}`) })),
      );
      const total = h.route.reduce((n, r) => n + (r.weight ?? 0), 0);
      if (h.route.length > 1 && total !== 100) throw bad(`spec.http.${i}.route: weights must add up to 100 (they add up to ${total})`);
      const f = h.fault;
      return {
        ...(h.name ? { name: h.name } : {}),
        match,
        ...(f
          ? {
              fault: {
                // Istio: an unset percentage applies the fault to every request.
                ...(f.delay ? { delay: { ms: f.delay.fixedDelay, percent: f.delay.percentage?.value ?? 100 } } : {}),
                ...(f.abort ? { abort: { ...(f.abort.httpStatus !== undefined ? { httpStatus: f.abort.httpStatus } : { grpcStatus: f.abort.grpcStatus! }), percent: f.abort.percentage?.value ?? 100 } } : {}),
              },
            }
          : {}),
        route: h.route.map((r) => ({ destination: { host: r.destination.host, ...(r.destination.subset ? { subset: r.destination.subset } : {}), ...(r.destination.port ? { port: r.destination.port.number } : {}) }, weight: h.route.length === 1 ? 100 : (r.weight ?? 0) })),
      };
    }),
  };
}
