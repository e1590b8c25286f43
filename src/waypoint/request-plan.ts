import type { ClusterIndex, Endpoint, ServicePortEntry } from '../k8s/cluster-index.js';
import { authorizeL7, type JwtAuth, type L7Decision, type TargetedPolicy } from './l7-authorization.js';
import { authenticate, type RequestAuthentication } from './request-authentication.js';
import type { HeaderModifier, PathRewrite, RetryPolicy, RouteFilter } from './route-model.js';
import { findRoute, pickBackend, type Gateway, type RouteEntry, type RouteTable } from './route-table.js';
import type { Resilience } from '../resilience/resilience-context.js';
import type { UpstreamCluster } from '../resilience/upstream-cluster.js';
import { backendService, serviceExists } from './upstream.js';

/**
 * What to do with one HTTP request (docs/architecture.md §14):
 * authenticate (RequestAuthentication), authorize (AuthorizationPolicy),
 * route (HTTPRoute/GRPCRoute or the destination Service), as plain data the
 * HTTP/1.1 and HTTP/2 front ends both execute.
 */
export interface ConnectionFacts {
  source: { ip: string; port: number; principal?: string };
  /** what the client dialed: a Service VIP:port (or a pod IP:port) */
  destination: { ip: string; port: number };
}

export interface PlanRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authority: string;
  header(name: string): string | undefined;
  grpc: boolean;
}

export interface Snapshot {
  index: ClusterIndex;
  routes: RouteTable;
  authorizationPolicies: readonly TargetedPolicy[];
  requestAuthentications: readonly RequestAuthentication[];
  gateway: Gateway;
  /** DestinationRule, VirtualService faults, rate limits (docs/architecture.md §15) */
  resilience?: Resilience;
}

export interface Forward {
  kind: 'forward';
  service?: ServicePortEntry;
  /** endpoints to use: the backend Service's ready endpoints, or the dialed pod address itself */
  endpoints: readonly Endpoint[];
  route?: string;
  /** header edits, in order: authentication output first, then the route's RequestHeaderModifier */
  requestHeaders: HeaderModifier;
  responseHeaders?: HeaderModifier;
  path?: string;
  authority?: string;
  requestTimeoutMs?: number;
  backendRequestTimeoutMs?: number;
  retry?: RetryPolicy;
  mirror?: readonly Endpoint[];
  /** a DestinationRule's connection pool, outlier detection and load balancer for this upstream */
  cluster?: UpstreamCluster;
  /** a VirtualService fault delay before forwarding */
  delayMs?: number;
}

export interface Respond {
  kind: 'respond';
  status: number;
  body: string;
  headers: Record<string, string>;
  flags: string;
  route?: string;
}

export type Plan = (Forward | Respond) & { decision: L7Decision; auth?: JwtAuth; service?: ServicePortEntry };

const EMPTY_MODIFIER: HeaderModifier = { set: [], add: [], remove: [] };

function destinationService(s: Snapshot, c: ConnectionFacts): ServicePortEntry | undefined {
  return s.index.serviceByVip(c.destination.ip, c.destination.port);
}

function rewritePath(rewrite: PathRewrite | undefined, entry: RouteEntry | undefined, path: string): string | undefined {
  if (rewrite === undefined) return undefined;
  if (rewrite.type === 'ReplaceFullPath') return rewrite.value;
  const prefix = entry?.match.path.type === 'PathPrefix' ? entry.match.path.value.replace(/\/$/, '') : '';
  const rest = path.slice(prefix.length);
  const base = rewrite.value.replace(/\/$/, '');
  const joined = `${base}${rest}`;
  return joined === '' ? '/' : joined.startsWith('/') ? joined : `/${joined}`;
}

const respond = (status: number, body: string, flags: string, extra: Partial<Respond> = {}, headers: Record<string, string> = {}): Respond => ({ kind: 'respond', status, body, headers, flags, ...extra });

export async function planRequest(s: Snapshot, c: ConnectionFacts, r: PlanRequest): Promise<Plan> {
  const service = destinationService(s, c);
  const svcRef = service === undefined ? undefined : { namespace: service.namespace, name: service.name };
  const base = { ...(service ? { service } : {}) };
  const applies = (targets: readonly { kind: string; namespace: string; name: string }[], namespace: string): boolean =>
    targets.length === 0
      ? namespace === s.gateway.namespace || namespace === svcRef?.namespace
      : targets.some((t) => (t.kind === 'Gateway' ? t.namespace === s.gateway.namespace && t.name === s.gateway.name : t.namespace === svcRef?.namespace && t.name === svcRef.name));

  const authn = await authenticate(
    s.requestAuthentications.filter((p) => applies(p.targets, p.namespace)),
    r,
  );
  const noDecision: L7Decision = { allow: false, policy: '-', reason: 'not evaluated' };
  if (authn.kind === 'invalid') return { ...respond(401, 'Jwt verification fails\n', 'UAEX', {}, { 'www-authenticate': 'Bearer realm="warren-waypoint"' }), decision: { ...noDecision, reason: `RequestAuthentication: ${authn.reason}` }, ...base };
  const auth = authn.kind === 'ok' ? authn.auth : undefined;
  const decision = authorizeL7(s.authorizationPolicies, s.gateway, {
    source: c.source,
    destination: { ip: c.destination.ip, port: c.destination.port, namespace: service?.namespace ?? '', ...(svcRef ? { service: svcRef } : {}) },
    http: { method: r.method, path: r.path, host: r.authority, header: r.header, ...(auth ? { auth } : {}) },
  });
  const withAuth = { decision, ...(auth ? { auth } : {}), ...base };
  // 403 names no policy: the access log and metrics carry that, not the response.
  if (!decision.allow) return { ...respond(403, 'RBAC: access denied\n', 'UAEX'), ...withAuth };

  const authHeaders: HeaderModifier = authn.kind === 'ok' ? { set: authn.setHeaders.map(([name, value]) => ({ name, value })), add: [], remove: [...authn.stripHeaders] } : { ...EMPTY_MODIFIER, remove: [...authn.stripHeaders] };
  const entries = s.routes.entriesFor(service ? { namespace: service.namespace, name: service.name, port: service.port } : undefined, r.grpc);
  if (entries === undefined) {
    // No route: the Service's own endpoints, as Istio; a pod address is dialed as is.
    const endpoints = service !== undefined ? service.endpoints : s.index.workloadByIp(c.destination.ip) !== undefined ? [{ ip: c.destination.ip, port: c.destination.port }] : [];
    if (endpoints.length === 0) return { ...respond(503, 'no healthy upstream\n', 'UH'), ...withAuth };
    return { kind: 'forward', endpoints, requestHeaders: authHeaders, ...withAuth };
  }
  const entry = findRoute(entries, r);
  if (entry === undefined) return { ...respond(404, 'route not found\n', 'NR'), ...withAuth };
  const routeName = `${entry.route.kind} ${entry.route.namespace}/${entry.route.name} rule ${entry.ruleIndex}`;
  const filter = <T extends RouteFilter['type']>(t: T): Extract<RouteFilter, { type: T }> | undefined => entry.rule.filters.find((f): f is Extract<RouteFilter, { type: T }> => f.type === t);
  const redirect = filter('RequestRedirect');
  if (redirect !== undefined) {
    const host = redirect.hostname ?? r.authority.replace(/:\d+$/, '');
    const port = redirect.port !== undefined ? `:${redirect.port}` : '';
    const path = rewritePath(redirect.path, entry, r.path) ?? r.path;
    const query = r.query.toString();
    const location = `${redirect.scheme ?? 'http'}://${host}${port}${path}${query ? `?${query}` : ''}`;
    return { ...respond(redirect.statusCode, '', '-', { route: routeName }, { location }), ...withAuth };
  }
  const backend = pickBackend(entry.rule.backendRefs, Math.random);
  if (backend === undefined) return { ...respond(500, 'no backend for this route\n', 'NR', { route: routeName }), ...withAuth };
  const target = backend.kind === 'Service' && ['', 'core'].includes(backend.group) ? backendService(s.index, backend, service?.port ?? c.destination.port) : undefined;
  if (target === undefined) return { ...respond(500, serviceExists(s.index, backend.namespace, backend.name) ? 'backend port not found\n' : 'backend not found\n', 'NR', { route: routeName }), ...withAuth };
  if (target.endpoints.length === 0) return { ...respond(503, 'no healthy upstream\n', 'UH', { route: routeName }), ...withAuth };
  const rewrite = filter('URLRewrite');
  const reqMod = filter('RequestHeaderModifier')?.modifier;
  const mirror = filter('RequestMirror');
  const mirrorService = mirror === undefined ? undefined : backendService(s.index, mirror.backend, service?.port ?? c.destination.port);
  const newPath = rewritePath(rewrite?.path, entry, r.path);
  const rule = entry.rule;
  return {
    kind: 'forward',
    ...withAuth,
    service: target,
    endpoints: target.endpoints,
    route: routeName,
    requestHeaders: reqMod === undefined ? authHeaders : { set: [...authHeaders.set, ...reqMod.set], add: reqMod.add, remove: [...authHeaders.remove, ...reqMod.remove] },
    ...(filter('ResponseHeaderModifier') ? { responseHeaders: filter('ResponseHeaderModifier')!.modifier } : {}),
    ...(newPath !== undefined ? { path: newPath } : {}),
    ...(rewrite?.hostname ? { authority: rewrite.hostname } : {}),
    ...(rule.requestTimeoutMs ? { requestTimeoutMs: rule.requestTimeoutMs } : {}),
    ...(rule.backendRequestTimeoutMs ? { backendRequestTimeoutMs: rule.backendRequestTimeoutMs } : {}),
    ...(rule.retry ? { retry: rule.retry } : {}),
    ...(mirrorService && mirrorService.endpoints.length > 0 ? { mirror: mirrorService.endpoints } : {}),
  };
}

/** Applies a header modifier to a lowercase-keyed header record (Gateway API order: set, add, remove). */
export function applyHeaderModifier(headers: Record<string, string | string[] | undefined>, m: HeaderModifier): void {
  for (const { name, value } of m.set) headers[name.toLowerCase()] = value;
  for (const { name, value } of m.add) {
    const k = name.toLowerCase();
    const cur = headers[k];
    headers[k] = cur === undefined ? value : `${Array.isArray(cur) ? cur.join(',') : cur},${value}`;
  }
  for (const name of m.remove) delete headers[name.toLowerCase()];
}
