import { z } from 'zod';
import { describeIssue } from '../config/zod-issue.js';
import { WarrenError } from '../errors/warren-error.js';
import { linearRegex } from './linear-regex.js';

/**
 * HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1) as the waypoint
 * uses them (docs/architecture.md §14): parsed strictly, every
 * problem an ERR_ROUTE_INVALID naming the field, so the route's status can
 * say what to fix while the last good version keeps serving.
 */

export type PathMatch = { type: 'Exact' | 'PathPrefix'; value: string } | { type: 'RegularExpression'; value: string; re: RegExp };
export type ValueMatch = { name: string; type: 'Exact'; value: string } | { name: string; type: 'RegularExpression'; value: string; re: RegExp };

export interface RouteMatch {
  path: PathMatch;
  headers: readonly ValueMatch[];
  queryParams: readonly ValueMatch[];
  method?: string;
}

export interface HeaderModifier {
  set: ReadonlyArray<{ name: string; value: string }>;
  add: ReadonlyArray<{ name: string; value: string }>;
  remove: readonly string[];
}

export interface BackendRef {
  kind: string;
  group: string;
  namespace: string;
  name: string;
  port?: number;
  weight: number;
}

export type PathRewrite = { type: 'ReplaceFullPath'; value: string } | { type: 'ReplacePrefixMatch'; value: string };

export type RouteFilter =
  | { type: 'RequestHeaderModifier'; modifier: HeaderModifier }
  | { type: 'ResponseHeaderModifier'; modifier: HeaderModifier }
  | { type: 'RequestRedirect'; scheme?: string; hostname?: string; port?: number; path?: PathRewrite; statusCode: number }
  | { type: 'URLRewrite'; hostname?: string; path?: PathRewrite }
  | { type: 'RequestMirror'; backend: BackendRef };

export interface RetryPolicy {
  /** retries after the first try (Gateway API: "the maximum number of times ... should be retried") */
  attempts: number;
  codes: readonly number[];
  backoffMs: number;
}

export interface RouteRule {
  matches: readonly RouteMatch[];
  filters: readonly RouteFilter[];
  backendRefs: readonly BackendRef[];
  requestTimeoutMs?: number;
  backendRequestTimeoutMs?: number;
  retry?: RetryPolicy;
}

export interface ParentRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
  port?: number;
}

export interface Route {
  kind: 'HTTPRoute' | 'GRPCRoute';
  namespace: string;
  name: string;
  generation: number;
  /** ordering ties are broken by age, then name (Gateway API precedence) */
  createdAt: string;
  parentRefs: readonly ParentRef[];
  rules: readonly RouteRule[];
}

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$/, 'must be an HTTP header name');
const headerValue = z.string().max(4096).regex(/^[^\r\n\0]*$/, 'must not contain CR, LF or NUL');
/** Gateway API's Duration: up to four number+unit pairs, h m s ms. */
const duration = z
  .string()
  .regex(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/, 'must be a Gateway API duration like 10s or 500ms')
  .transform((text) => [...text.matchAll(/(\d+)(ms|h|m|s)/g)].reduce((ms, p) => ms + Number(p[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[p[2]!]!, 0));
const path = z.string().max(1024).regex(/^\//, 'must start with /');
const name = z.string().min(1).max(253);
const port = z.number().int().min(1).max(65535);

const valueMatch = z.strictObject({ type: z.enum(['Exact', 'RegularExpression']).default('Exact'), name: headerName, value: z.string().min(1).max(4096) });
const pathMatch = z.strictObject({ type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'), value: z.string().max(1024).default('/') });
const httpMatch = z.strictObject({
  path: pathMatch.optional(),
  headers: z.array(valueMatch).max(16).optional(),
  queryParams: z.array(valueMatch).max(16).optional(),
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']).optional(),
});
const grpcMatch = z.strictObject({
  method: z.strictObject({ type: z.enum(['Exact', 'RegularExpression']).default('Exact'), service: z.string().min(1).max(1024).optional(), method: z.string().min(1).max(1024).optional() }).optional(),
  headers: z.array(valueMatch).max(16).optional(),
});
const headerModifier = z.strictObject({
  set: z.array(z.strictObject({ name: headerName, value: headerValue })).max(16).optional(),
  add: z.array(z.strictObject({ name: headerName, value: headerValue })).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
});
const backendRefBase = { group: z.string().optional(), kind: z.string().optional(), name, namespace: name.optional(), port: port.optional() };
const pathModifier = z.strictObject({ type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']), replaceFullPath: path.optional(), replacePrefixMatch: path.optional() });
const filter = z.strictObject({
  type: z.enum(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror', 'ExtensionRef']),
  requestHeaderModifier: headerModifier.optional(),
  responseHeaderModifier: headerModifier.optional(),
  requestRedirect: z
    .strictObject({ scheme: z.enum(['http', 'https']).optional(), hostname: z.string().min(1).max(253).optional(), path: pathModifier.optional(), port: port.optional(), statusCode: z.union([z.literal(301), z.literal(302)]).default(302) })
    .optional(),
  urlRewrite: z.strictObject({ hostname: z.string().min(1).max(253).optional(), path: pathModifier.optional() }).optional(),
  requestMirror: z.strictObject({ backendRef: z.strictObject(backendRefBase), percent: z.number().optional(), fraction: z.unknown().optional() }).optional(),
  extensionRef: z.unknown().optional(),
});
const backendRef = z.strictObject({ ...backendRefBase, weight: z.number().int().min(0).max(1_000_000).default(1), filters: z.array(filter).max(16).optional() });
const parentRef = z.strictObject({ group: z.string().optional(), kind: z.string().optional(), namespace: name.optional(), name, sectionName: z.string().optional(), port: port.optional() });
const metadata = z.object({ name, namespace: name, generation: z.number().int().optional(), creationTimestamp: z.union([z.string(), z.date()]).optional() });
const httpRule = z.strictObject({
  name: z.string().optional(),
  matches: z.array(httpMatch).max(64).optional(),
  filters: z.array(filter).max(16).optional(),
  backendRefs: z.array(backendRef).max(16).optional(),
  timeouts: z.strictObject({ request: duration.optional(), backendRequest: duration.optional() }).optional(),
  retry: z.strictObject({ attempts: z.number().int().min(0).max(10).optional(), codes: z.array(z.number().int().min(400).max(599)).max(32).optional(), backoff: duration.optional() }).optional(),
  sessionPersistence: z.unknown().optional(),
});
const grpcRule = z.strictObject({
  name: z.string().optional(),
  matches: z.array(grpcMatch).max(64).optional(),
  filters: z.array(filter).max(16).optional(),
  backendRefs: z.array(backendRef).max(16).optional(),
  sessionPersistence: z.unknown().optional(),
});
const httpRouteSchema = z.object({ metadata, spec: z.strictObject({ parentRefs: z.array(parentRef).min(1).max(32), hostnames: z.array(z.string()).max(16).optional(), rules: z.array(httpRule).max(16).default([]) }) });
const grpcRouteSchema = z.object({ metadata, spec: z.strictObject({ parentRefs: z.array(parentRef).min(1).max(32), hostnames: z.array(z.string()).max(16).optional(), rules: z.array(grpcRule).max(16).default([]) }) });

const invalid = (message: string): WarrenError => new WarrenError('ERR_ROUTE_INVALID', message);

function regex(source: string, field: string): RegExp {
  try {
    return linearRegex(source);
  } catch (err) {
    throw invalid(`${field}: ${JSON.stringify(source)} is not a regular expression the linear-time engine runs (${(err as Error).message})`);
  }
}

function compileValue(m: z.infer<typeof valueMatch>, field: string): ValueMatch {
  return m.type === 'RegularExpression' ? { name: m.name, type: m.type, value: m.value, re: regex(m.value, `${field}.value`) } : { name: m.name, type: 'Exact', value: m.value };
}

function compilePath(p: z.infer<typeof pathMatch> | undefined, field: string): PathMatch {
  if (p === undefined) return { type: 'PathPrefix', value: '/' };
  if (p.type === 'RegularExpression') return { type: p.type, value: p.value, re: regex(p.value, `${field}.value`) };
  if (!p.value.startsWith('/')) throw invalid(`${field}.value: must start with /`);
  if (/[?#]|\/\/|\/\.\.?(\/|$)/.test(p.value)) throw invalid(`${field}.value: must be a normalized path without query or fragment`);
  return { type: p.type, value: p.value };
}

function headerModifierOf(m: z.infer<typeof headerModifier> | undefined, field: string): HeaderModifier {
  if (m === undefined) throw invalid(`${field}: must be set for this filter type`);
  return { set: m.set ?? [], add: m.add ?? [], remove: m.remove ?? [] };
}

function backendOf(b: { group?: string | undefined; kind?: string | undefined; name: string; namespace?: string | undefined; port?: number | undefined }, routeNamespace: string, weight: number): BackendRef {
  return { group: b.group ?? '', kind: b.kind ?? 'Service', name: b.name, namespace: b.namespace ?? routeNamespace, ...(b.port !== undefined ? { port: b.port } : {}), weight };
}

function pathRewrite(p: z.infer<typeof pathModifier> | undefined, field: string): PathRewrite | undefined {
  if (p === undefined) return undefined;
  const value = p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch;
  if (value === undefined) throw invalid(`${field}.${p.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch'}: must be set for type ${p.type}`);
  return { type: p.type, value };
}

function compileFilter(f: z.infer<typeof filter>, field: string, routeNamespace: string, grpc: boolean): RouteFilter {
  if (grpc && (f.type === 'RequestRedirect' || f.type === 'URLRewrite')) throw invalid(`${field}.type: ${f.type} is not a GRPCRoute filter`);
  switch (f.type) {
    case 'RequestHeaderModifier':
      return { type: f.type, modifier: headerModifierOf(f.requestHeaderModifier, `${field}.requestHeaderModifier`) };
    case 'ResponseHeaderModifier':
      return { type: f.type, modifier: headerModifierOf(f.responseHeaderModifier, `${field}.responseHeaderModifier`) };
    case 'RequestRedirect': {
      const r = f.requestRedirect;
      if (r === undefined) throw invalid(`${field}.requestRedirect: must be set for this filter type`);
      const p = pathRewrite(r.path, `${field}.requestRedirect.path`);
      return { type: f.type, statusCode: r.statusCode, ...(r.scheme ? { scheme: r.scheme } : {}), ...(r.hostname ? { hostname: r.hostname } : {}), ...(r.port ? { port: r.port } : {}), ...(p ? { path: p } : {}) };
    }
    case 'URLRewrite': {
      const r = f.urlRewrite;
      if (r === undefined) throw invalid(`${field}.urlRewrite: must be set for this filter type`);
      const p = pathRewrite(r.path, `${field}.urlRewrite.path`);
      return { type: f.type, ...(r.hostname ? { hostname: r.hostname } : {}), ...(p ? { path: p } : {}) };
    }
    case 'RequestMirror': {
      const r = f.requestMirror;
      if (r === undefined) throw invalid(`${field}.requestMirror: must be set for this filter type`);
      return { type: f.type, backend: backendOf(r.backendRef, routeNamespace, 1) };
    }
    case 'ExtensionRef':
      throw invalid(`${field}.type: ExtensionRef is not supported by warren`);
  }
}

function checkFilters(filters: readonly RouteFilter[], field: string): void {
  const count = (t: RouteFilter['type']): number => filters.filter((f) => f.type === t).length;
  for (const t of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite'] as const) if (count(t) > 1) throw invalid(`${field}: at most one ${t} filter`);
  if (count('RequestRedirect') > 0 && count('URLRewrite') > 0) throw invalid(`${field}: RequestRedirect and URLRewrite cannot be combined`);
}

/** A GRPCRoute method match as the HTTP/2 path it selects (gRPC's :path is /service/method). */
function grpcPath(m: z.infer<typeof grpcMatch>['method'], field: string): PathMatch {
  if (m === undefined || (m.service === undefined && m.method === undefined)) {
    if (m !== undefined) throw invalid(`${field}: one of service or method must be set`);
    return { type: 'PathPrefix', value: '/' };
  }
  if (m.type === 'RegularExpression') {
    const source = `/${m.service ?? '[^/]+'}/${m.method ?? '[^/]+'}`;
    return { type: 'RegularExpression', value: source, re: regex(source, `${field}.${m.service !== undefined ? 'service' : 'method'}`) };
  }
  const token = /^[A-Za-z0-9_.]+$/;
  if (m.service !== undefined && !token.test(m.service)) throw invalid(`${field}.service: must be a gRPC service name`);
  if (m.method !== undefined && !/^[A-Za-z0-9_]+$/.test(m.method)) throw invalid(`${field}.method: must be a gRPC method name`);
  if (m.method === undefined) return { type: 'PathPrefix', value: `/${m.service}` };
  if (m.service === undefined) {
    const source = `/[^/]+/${m.method}`;
    return { type: 'RegularExpression', value: source, re: regex(source, `${field}.method`) };
  }
  return { type: 'Exact', value: `/${m.service}/${m.method}` };
}

function parentOf(p: z.infer<typeof parentRef>, routeNamespace: string): ParentRef {
  return { group: p.group ?? GATEWAY_GROUP, kind: p.kind ?? 'Gateway', namespace: p.namespace ?? routeNamespace, name: p.name, ...(p.port !== undefined ? { port: p.port } : {}) };
}

const timestamp = (t: string | Date | undefined): string => (t === undefined ? '' : typeof t === 'string' ? t : t.toISOString());

/** An HTTPRoute API object → Route; throws ERR_ROUTE_INVALID naming the field. */
export function parseHttpRoute(obj: unknown): Route {
  const parsed = httpRouteSchema.safeParse(obj);
  if (!parsed.success) throw invalid(describeIssue(parsed.error));
  const { metadata: m, spec } = parsed.data;
  const rules = spec.rules.map((r, i): RouteRule => {
    const at = `spec.rules.${i}`;
    const filters = (r.filters ?? []).map((f, j) => compileFilter(f, `${at}.filters.${j}`, m.namespace, false));
    checkFilters(filters, `${at}.filters`);
    (r.backendRefs ?? []).forEach((b, j) => b.filters?.length && invalidBackendFilters(`${at}.backendRefs.${j}.filters`));
    const matches = (r.matches ?? [{}]).map((x, j): RouteMatch => ({
      path: compilePath(x.path, `${at}.matches.${j}.path`),
      headers: (x.headers ?? []).map((h, k) => compileValue(h, `${at}.matches.${j}.headers.${k}`)),
      queryParams: (x.queryParams ?? []).map((q, k) => compileValue(q, `${at}.matches.${j}.queryParams.${k}`)),
      ...(x.method ? { method: x.method } : {}),
    }));
    const prefixRewrite = filters.some((f) => (f.type === 'URLRewrite' || f.type === 'RequestRedirect') && f.path?.type === 'ReplacePrefixMatch');
    if (prefixRewrite && matches.some((x) => x.path.type !== 'PathPrefix')) throw invalid(`${at}.filters: ReplacePrefixMatch needs every match of the rule to be a PathPrefix`);
    const t = r.timeouts;
    if (t?.request !== undefined && t.backendRequest !== undefined && t.request !== 0 && t.backendRequest > t.request) throw invalid(`${at}.timeouts.backendRequest: must not exceed timeouts.request`);
    return {
      matches,
      filters,
      backendRefs: (r.backendRefs ?? []).map((b) => backendOf(b, m.namespace, b.weight)),
      ...(t?.request ? { requestTimeoutMs: t.request } : {}),
      ...(t?.backendRequest ? { backendRequestTimeoutMs: t.backendRequest } : {}),
      ...(r.retry ? { retry: { attempts: r.retry.attempts ?? 1, codes: r.retry.codes ?? [], backoffMs: r.retry.backoff ?? 25 } } : {}),
    };
  });
  return { kind: 'HTTPRoute', namespace: m.namespace, name: m.name, generation: m.generation ?? 0, createdAt: timestamp(m.creationTimestamp), parentRefs: spec.parentRefs.map((p) => parentOf(p, m.namespace)), rules };
}

function invalidBackendFilters(field: string): never {
  throw invalid(`${field}: per-backend filters are not supported by warren; put them on the rule`);
}

/** A GRPCRoute API object → Route (method matches become HTTP/2 path matches). */
export function parseGrpcRoute(obj: unknown): Route {
  const parsed = grpcRouteSchema.safeParse(obj);
  if (!parsed.success) throw invalid(describeIssue(parsed.error));
  const { metadata: m, spec } = parsed.data;
  const rules = spec.rules.map((r, i): RouteRule => {
    const at = `spec.rules.${i}`;
    const filters = (r.filters ?? []).map((f, j) => compileFilter(f, `${at}.filters.${j}`, m.namespace, true));
    checkFilters(filters, `${at}.filters`);
    (r.backendRefs ?? []).forEach((b, j) => b.filters?.length && invalidBackendFilters(`${at}.backendRefs.${j}.filters`));
    const matches = (r.matches ?? [{}]).map((x, j): RouteMatch => ({
      path: grpcPath(x.method, `${at}.matches.${j}.method`),
      headers: (x.headers ?? []).map((h, k) => compileValue(h, `${at}.matches.${j}.headers.${k}`)),
      queryParams: [],
    }));
    return { matches, filters, backendRefs: (r.backendRefs ?? []).map((b) => backendOf(b, m.namespace, b.weight)) };
  });
  return { kind: 'GRPCRoute', namespace: m.namespace, name: m.name, generation: m.generation ?? 0, createdAt: timestamp(m.creationTimestamp), parentRefs: spec.parentRefs.map((p) => parentOf(p, m.namespace)), rules };
}
