import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGrpcRoute, parseHttpRoute } from '../../src/waypoint/route-model.js';
import { buildRouteTable, findRoute, pickBackend, prefixMatches, type RouteRequest } from '../../src/waypoint/route-table.js';

const GW = { namespace: 'demo', name: 'waypoint' };
const svc = { namespace: 'demo', name: 'web', port: 80 };
const route = (name: string, rules: unknown[], extra: Record<string, unknown> = {}) => ({
  metadata: { name, namespace: 'demo', generation: 1, creationTimestamp: extra.created ?? '2026-01-01T00:00:00Z' },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', ...(extra.port ? { port: extra.port } : {}) }], rules },
});
const req = (path: string, o: { method?: string; headers?: Record<string, string>; grpc?: boolean } = {}): RouteRequest => {
  const url = new URL(path, 'http://x');
  return { method: o.method ?? 'GET', path: url.pathname, query: url.searchParams, header: (n) => o.headers?.[n], grpc: o.grpc ?? false };
};
const backendOf = (table: ReturnType<typeof buildRouteTable>, r: RouteRequest, grpc = false): string | undefined => {
  const e = findRoute(table.entriesFor(svc, grpc) ?? [], r);
  return e?.rule.backendRefs[0]?.name;
};

test('PathPrefix matches whole path elements; a trailing slash in the prefix is ignored', () => {
  assert.equal(prefixMatches('/api', '/api'), true);
  assert.equal(prefixMatches('/api', '/api/v1'), true);
  assert.equal(prefixMatches('/api/', '/api/v1'), true);
  assert.equal(prefixMatches('/api', '/apiv1'), false);
  assert.equal(prefixMatches('/', '/anything'), true);
});

test('precedence: exact path, then regex, then the longest prefix, then method, headers, query params; ties by age', () => {
  const t = buildRouteTable(
    [
      parseHttpRoute(route('a', [{ backendRefs: [{ name: 'root' }] }, { matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'api' }] }])),
      parseHttpRoute(route('b', [{ matches: [{ path: { type: 'PathPrefix', value: '/api/v2' } }], backendRefs: [{ name: 'api-v2' }] }, { matches: [{ path: { type: 'Exact', value: '/api/v2/health' } }], backendRefs: [{ name: 'health' }] }])),
      parseHttpRoute(route('c', [{ matches: [{ path: { type: 'PathPrefix', value: '/api' }, method: 'POST' }], backendRefs: [{ name: 'api-post' }] }, { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-canary', value: 'yes' }] }], backendRefs: [{ name: 'canary' }] }])),
      parseHttpRoute(route('d', [{ matches: [{ path: { type: 'RegularExpression', value: '/api/v[0-9]+/items' } }], backendRefs: [{ name: 'regex' }] }])),
      parseHttpRoute(route('older', [{ matches: [{ path: { type: 'PathPrefix', value: '/tie' } }], backendRefs: [{ name: 'older' }] }], { created: '2025-01-01T00:00:00Z' })),
      parseHttpRoute(route('newer', [{ matches: [{ path: { type: 'PathPrefix', value: '/tie' } }], backendRefs: [{ name: 'newer' }] }], { created: '2027-01-01T00:00:00Z' })),
    ],
    GW,
  );
  assert.equal(backendOf(t, req('/')), 'root');
  assert.equal(backendOf(t, req('/api/x')), 'api');
  assert.equal(backendOf(t, req('/api/v2/x')), 'api-v2');
  assert.equal(backendOf(t, req('/api/v2/health')), 'health');
  assert.equal(backendOf(t, req('/api/v3/items')), 'regex');
  assert.equal(backendOf(t, req('/api/x', { method: 'POST' })), 'api-post');
  assert.equal(backendOf(t, req('/api/x', { headers: { 'x-canary': 'yes' } })), 'canary');
  assert.equal(backendOf(t, req('/tie')), 'older');
});

test('headers and query params: exact and regex; all conditions of a match must hold', () => {
  const t = buildRouteTable(
    [
      parseHttpRoute(
        route('r', [
          { matches: [{ headers: [{ name: 'End-User', value: 'jason' }], queryParams: [{ name: 'v', type: 'RegularExpression', value: '2|two' }] }], backendRefs: [{ name: 'both' }] },
          { matches: [{ headers: [{ name: 'end-user', type: 'RegularExpression', value: 'ja.*' }] }], backendRefs: [{ name: 'header' }] },
        ]),
      ),
    ],
    GW,
  );
  assert.equal(backendOf(t, req('/?v=two', { headers: { 'end-user': 'jason' } })), 'both');
  assert.equal(backendOf(t, req('/?v=3', { headers: { 'end-user': 'jason' } })), 'header');
  assert.equal(backendOf(t, req('/?v=2', { headers: { 'end-user': 'bob' } })), undefined, 'routes attached but none matches: 404, not the default');
});

test('a route with a port in its parentRef applies to that port only; no routes: undefined (the Service default)', () => {
  const t = buildRouteTable([parseHttpRoute(route('p', [{ backendRefs: [{ name: 'x' }] }], { port: 8080 }))], GW);
  assert.equal(t.entriesFor(svc, false), undefined);
  assert.equal(t.entriesFor({ ...svc, port: 8080 }, false)?.length, 1);
});

test('weights: the split follows the weights, weight 0 never gets traffic, all-zero is no backend', () => {
  const refs = parseHttpRoute(route('w', [{ backendRefs: [{ name: 'v1', weight: 80 }, { name: 'v2', weight: 20 }, { name: 'off', weight: 0 }] }])).rules[0]!.backendRefs;
  const counts = new Map<string, number>();
  for (let i = 0; i < 1000; i++) {
    const b = pickBackend(refs, () => i / 1000)!;
    counts.set(b.name, (counts.get(b.name) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(counts), { v1: 800, v2: 200 });
  assert.equal(pickBackend(refs.map((r) => ({ ...r, weight: 0 })), Math.random), undefined);
});

test('malformed routes are refused naming the field: backtracking regex, bad duration, unknown field, bad filter combination', () => {
  const bad = (rules: unknown[], field: RegExp) => assert.throws(() => parseHttpRoute(route('bad', rules)), (e: Error & { code?: string }) => e.code === 'ERR_ROUTE_INVALID' && field.test(e.message));
  bad([{ matches: [{ path: { type: 'RegularExpression', value: '(a)\\1' } }] }], /^spec\.rules\.0\.matches\.0\.path\.value: .*linear-time/);
  bad([{ timeouts: { request: '10 seconds' } }], /^spec\.rules\.0\.timeouts\.request: must be a Gateway API duration/);
  bad([{ matchs: [] }], /^spec\.rules\.0: Unrecognized key/);
  bad([{ matches: [{ path: { type: 'Exact', value: 'no-slash' } }] }], /spec\.rules\.0\.matches\.0\.path\.value: must start with \//);
  bad([{ filters: [{ type: 'RequestRedirect', requestRedirect: {} }, { type: 'URLRewrite', urlRewrite: {} }] }], /spec\.rules\.0\.filters: RequestRedirect and URLRewrite cannot be combined/);
  bad([{ filters: [{ type: 'RequestHeaderModifier' }] }], /spec\.rules\.0\.filters\.0\.requestHeaderModifier: must be set/);
  bad([{ backendRefs: [{ name: 'x', weight: -1 }] }], /spec\.rules\.0\.backendRefs\.0\.weight/);
  bad([{ timeouts: { request: '1s', backendRequest: '2s' } }], /backendRequest: must not exceed timeouts\.request/);
});

test('a catastrophic-backtracking pattern runs in linear time', () => {
  const t = buildRouteTable([parseHttpRoute(route('re', [{ matches: [{ path: { type: 'RegularExpression', value: '/(a+)+b' } }], backendRefs: [{ name: 're' }] }]))], GW);
  const started = performance.now();
  assert.equal(backendOf(t, req(`/${'a'.repeat(5000)}c`)), undefined);
  assert.ok(performance.now() - started < 100, 'no exponential blow-up');
});

test('GRPCRoute: method matches become :path matches and gRPC requests try GRPCRoutes first', () => {
  const g = parseGrpcRoute({
    metadata: { name: 'g', namespace: 'demo' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [{ matches: [{ method: { service: 'echo.Echo', method: 'Unary' } }], backendRefs: [{ name: 'unary' }] }, { matches: [{ method: { service: 'echo.Echo' } }], backendRefs: [{ name: 'svc' }] }] },
  });
  const t = buildRouteTable([g, parseHttpRoute(route('h', [{ backendRefs: [{ name: 'http' }] }]))], GW);
  assert.equal(backendOf(t, req('/echo.Echo/Unary', { grpc: true }), true), 'unary');
  assert.equal(backendOf(t, req('/echo.Echo/Stream', { grpc: true }), true), 'svc');
  assert.equal(backendOf(t, req('/other.Svc/X', { grpc: true }), true), 'http');
  assert.equal(backendOf(t, req('/echo.Echo/Unary'), false), 'http', 'plain HTTP never matches a GRPCRoute');
  assert.throws(() => parseGrpcRoute({ metadata: { name: 'g', namespace: 'demo' }, spec: { parentRefs: [{ name: 'w' }], rules: [{ matches: [{ method: { service: 'a/b' } }] }] } }), /spec\.rules\.0\.matches\.0\.method\.service: must be a gRPC service name/);
});
