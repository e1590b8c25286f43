import type { BackendRef, ParentRef, Route, RouteMatch, RouteRule, ValueMatch } from './route-model.js';

/**
 * The compiled route table (docs/architecture.md §14): for each
 * parent the waypoint serves, every (rule, match) of the routes attached to
 * it, sorted once by Gateway API precedence, so a request walks one list and
 * takes the first hit.
 */
export interface RouteEntry {
  route: Route;
  ruleIndex: number;
  rule: RouteRule;
  match: RouteMatch;
}

export interface Gateway {
  namespace: string;
  name: string;
}

export interface ServiceKey {
  namespace: string;
  name: string;
  port: number;
}

export interface RouteRequest {
  method: string;
  /** the path without its query */
  path: string;
  query: URLSearchParams;
  /** a request header by lowercase name (repeated headers joined with ",") */
  header(name: string): string | undefined;
  /** content-type application/grpc: GRPCRoutes are tried first */
  grpc: boolean;
}

export interface RouteTable {
  /** entries for traffic to this Service port: its own routes (GAMMA), else the waypoint Gateway's; undefined when none attach */
  entriesFor(service: ServiceKey | undefined, grpc: boolean): readonly RouteEntry[] | undefined;
  /** the table as data, for the admin API and `warren routes` */
  describe(): RouteTableView[];
}

export interface RouteTableView {
  parent: string;
  entries: Array<{ route: string; rule: number; match: string; backends: string[]; filters: string[]; timeoutMs?: number; backendTimeoutMs?: number; retry?: string }>;
}

const CORE_GROUPS = new Set(['', 'core']);
const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export function isServiceParent(p: ParentRef): boolean {
  return p.kind === 'Service' && CORE_GROUPS.has(p.group);
}

export function isGatewayParent(p: ParentRef, gw: Gateway): boolean {
  return p.kind === 'Gateway' && p.group === GATEWAY_GROUP && p.namespace === gw.namespace && p.name === gw.name;
}

/** Precedence as Gateway API orders matches: exact path, then regex, then longer prefixes, method, more headers, more query params. */
function rank(m: RouteMatch): number[] {
  const pathKind = m.path.type === 'Exact' ? 3 : m.path.type === 'RegularExpression' ? 2 : 1;
  const prefixLength = m.path.type === 'PathPrefix' ? m.path.value.length : 0;
  return [pathKind, prefixLength, m.method !== undefined ? 1 : 0, m.headers.length, m.queryParams.length];
}

function compare(a: RouteEntry, b: RouteEntry): number {
  const ra = rank(a.match);
  const rb = rank(b.match);
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return rb[i]! - ra[i]!;
  if (a.route.createdAt !== b.route.createdAt) return a.route.createdAt < b.route.createdAt ? -1 : 1;
  const an = `${a.route.namespace}/${a.route.name}`;
  const bn = `${b.route.namespace}/${b.route.name}`;
  if (an !== bn) return an < bn ? -1 : 1;
  return a.ruleIndex - b.ruleIndex;
}

const serviceKey = (ns: string, name: string): string => `${ns}/${name}`;

export function buildRouteTable(routes: readonly Route[], gateway: Gateway): RouteTable {
  // per Service: entries that name a port are kept apart from port-less ones
  const byService = new Map<string, Array<{ port?: number; entry: RouteEntry }>>();
  const gatewayEntries: RouteEntry[] = [];
  for (const route of routes) {
    const entries = route.rules.flatMap((rule, ruleIndex) => rule.matches.map((match) => ({ route, ruleIndex, rule, match })));
    for (const p of route.parentRefs) {
      if (isServiceParent(p)) {
        const k = serviceKey(p.namespace, p.name);
        const list = byService.get(k) ?? [];
        for (const entry of entries) list.push({ ...(p.port !== undefined ? { port: p.port } : {}), entry });
        byService.set(k, list);
      } else if (isGatewayParent(p, gateway)) gatewayEntries.push(...entries);
    }
  }
  const sorted = new Map<string, RouteEntry[]>();
  const forPort = (service: ServiceKey, grpc: boolean): RouteEntry[] | undefined => {
    const k = `${serviceKey(service.namespace, service.name)}|${service.port}|${grpc}`;
    let list = sorted.get(k);
    if (list !== undefined) return list.length > 0 ? list : undefined;
    const all = (byService.get(serviceKey(service.namespace, service.name)) ?? []).filter((x) => x.port === undefined || x.port === service.port).map((x) => x.entry);
    list = ordered(all, grpc);
    sorted.set(k, list);
    return list.length > 0 ? list : undefined;
  };
  const gatewaySorted = { grpc: ordered(gatewayEntries, true), http: ordered(gatewayEntries, false) };
  return {
    entriesFor(service, grpc) {
      const own = service === undefined ? undefined : forPort(service, grpc);
      if (own !== undefined) return own;
      const gw = grpc ? gatewaySorted.grpc : gatewaySorted.http;
      return gw.length > 0 ? gw : undefined;
    },
    describe() {
      const views: RouteTableView[] = [];
      for (const [k, list] of byService) {
        const ports = [...new Set(list.map((x) => x.port))];
        for (const port of ports) {
          const entries = ordered(list.filter((x) => x.port === port).map((x) => x.entry), false);
          views.push({ parent: `Service ${k}${port === undefined ? '' : `:${port}`}`, entries: entries.map(view) });
        }
      }
      if (gatewayEntries.length > 0) views.push({ parent: `Gateway ${gateway.namespace}/${gateway.name}`, entries: gatewaySorted.http.map(view) });
      return views.sort((a, b) => (a.parent < b.parent ? -1 : 1));
    },
  };
}

/** gRPC requests try GRPCRoutes before HTTPRoutes; other requests see HTTPRoutes only. */
function ordered(entries: readonly RouteEntry[], grpc: boolean): RouteEntry[] {
  const http = entries.filter((e) => e.route.kind === 'HTTPRoute').sort(compare);
  return grpc ? [...entries.filter((e) => e.route.kind === 'GRPCRoute').sort(compare), ...http] : http;
}

function describeMatch(m: RouteMatch): string {
  const parts = [`${m.path.type} ${m.path.value}`];
  if (m.method) parts.push(`method ${m.method}`);
  for (const h of m.headers) parts.push(`header ${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`);
  for (const q of m.queryParams) parts.push(`query ${q.name}${q.type === 'Exact' ? '=' : '~'}${q.value}`);
  return parts.join(', ');
}

function view(e: RouteEntry): RouteTableView['entries'][number] {
  const r = e.rule;
  return {
    route: `${e.route.kind} ${e.route.namespace}/${e.route.name}`,
    rule: e.ruleIndex,
    match: describeMatch(e.match),
    backends: r.backendRefs.map((b) => `${b.namespace}/${b.name}${b.port ? `:${b.port}` : ''} weight ${b.weight}`),
    filters: r.filters.map((f) => f.type),
    ...(r.requestTimeoutMs ? { timeoutMs: r.requestTimeoutMs } : {}),
    ...(r.backendRequestTimeoutMs ? { backendTimeoutMs: r.backendRequestTimeoutMs } : {}),
    ...(r.retry ? { retry: `attempts ${r.retry.attempts} codes ${r.retry.codes.join(',') || '-'} backoff ${r.retry.backoffMs}ms` } : {}),
  };
}

function valueMatches(m: ValueMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  return m.type === 'Exact' ? m.value === value : m.re.test(value);
}

/** Gateway API PathPrefix matches whole path elements: /foo matches /foo and /foo/bar, not /foobar. */
export function prefixMatches(prefix: string, path: string): boolean {
  const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (p === '/') return true;
  return path === p || (path.startsWith(p) && path.charCodeAt(p.length) === 47);
}

export function matchesRequest(m: RouteMatch, r: RouteRequest): boolean {
  const path = m.path;
  if (path.type === 'RegularExpression') {
    if (!path.re.test(r.path)) return false;
  } else if (path.type === 'Exact' ? path.value !== r.path : !prefixMatches(path.value, r.path)) return false;
  if (m.method !== undefined && m.method !== r.method) return false;
  for (const h of m.headers) if (!valueMatches(h, r.header(h.name.toLowerCase()))) return false;
  for (const q of m.queryParams) if (!valueMatches(q, r.query.get(q.name) ?? undefined)) return false;
  return true;
}

export function findRoute(entries: readonly RouteEntry[], r: RouteRequest): RouteEntry | undefined {
  for (const e of entries) if (matchesRequest(e.match, r)) return e;
  return undefined;
}

/** A weighted choice of backend (canary splits); undefined when every weight is 0 (Gateway API: answer 500). */
export function pickBackend(refs: readonly BackendRef[], random: () => number): BackendRef | undefined {
  let total = 0;
  for (const b of refs) total += b.weight;
  if (total === 0) return undefined;
  let at = random() * total;
  for (const b of refs) {
    if (at < b.weight) return b;
    at -= b.weight;
  }
  return refs.findLast((b) => b.weight > 0);
}
