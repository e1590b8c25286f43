import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatResilience } from '../../src/cli/resilience-format.js';
import { effectivePolicy, parseDestinationRule } from '../../src/resilience/destination-rule.js';
import { buildResilienceTable } from '../../src/resilience/resilience-table.js';
import { resolveHost } from '../../src/resilience/istio-fields.js';
import { parseBackendTrafficPolicy } from '../../src/resilience/traffic-policy.js';
import { parseVirtualService } from '../../src/resilience/virtual-service.js';
import { parseHttpRoute } from '../../src/waypoint/route-model.js';
import { buildRouteTable } from '../../src/waypoint/route-table.js';

const meta = { name: 'r', namespace: 'demo', generation: 3 };
const rejects = (parse: (o: unknown) => unknown, spec: unknown, code: string, field: RegExp) =>
  assert.throws(() => parse({ metadata: meta, spec }), (e: Error & { code?: string }) => e.code === code && field.test(e.message), `expected ${code} naming ${field}`);

test('an Istio circuit-breaking DestinationRule (the task\'s httpbin example) parses with its fields', () => {
  const dr = parseDestinationRule({
    metadata: meta,
    spec: {
      host: 'httpbin',
      trafficPolicy: {
        connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } },
        outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3m', maxEjectionPercent: 100 },
      },
    },
  });
  assert.deepEqual(dr.trafficPolicy?.connectionPool, { maxConnections: 1, http1MaxPendingRequests: 1, http2MaxRequests: 4_294_967_295, maxRequestsPerConnection: 1, maxRetries: 4_294_967_295 });
  assert.deepEqual(dr.trafficPolicy?.outlierDetection, { consecutive5xxErrors: 1, consecutiveGatewayErrors: 0, intervalMs: 1000, baseEjectionTimeMs: 180_000, maxEjectionPercent: 100, minHealthPercent: 0 });
});

test('DestinationRule: Istio defaults for unset outlier fields; subsets and port-level settings merge field by field', () => {
  const dr = parseDestinationRule({
    metadata: meta,
    spec: {
      host: 'reviews.demo.svc.cluster.local',
      trafficPolicy: { loadBalancer: { simple: 'RANDOM' }, outlierDetection: {}, portLevelSettings: [{ port: { number: 9080 }, loadBalancer: { simple: 'LEAST_REQUEST' } }] },
      subsets: [{ name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } } }],
    },
  });
  assert.deepEqual(dr.trafficPolicy?.outlierDetection, { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0 });
  assert.deepEqual(effectivePolicy(dr, 80).loadBalancer, { simple: 'RANDOM' });
  assert.deepEqual(effectivePolicy(dr, 9080).loadBalancer, { simple: 'LEAST_REQUEST' });
  assert.deepEqual(effectivePolicy(dr, 80, 'v2').loadBalancer, { consistentHashHeader: 'x-user' });
  assert.ok(effectivePolicy(dr, 80, 'v2').outlierDetection, 'the subset keeps the rule\'s outlier detection');
});

test('DestinationRule: invalid fields are errors naming the field', () => {
  const code = 'ERR_DESTINATION_RULE_INVALID';
  rejects(parseDestinationRule, { host: 'a', trafficPolicy: { connectionPool: { tcp: { maxConnections: 0 } } } }, code, /^spec\.trafficPolicy\.connectionPool\.tcp\.maxConnections:/);
  rejects(parseDestinationRule, { host: 'a', trafficPolicy: { outlierDetection: { interval: 'soon' } } }, code, /^spec\.trafficPolicy\.outlierDetection\.interval:/);
  rejects(parseDestinationRule, { host: 'a', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }, code, /^spec\.trafficPolicy: .*tls/);
  rejects(parseDestinationRule, { host: 'a', trafficPolicy: { loadBalancer: { simple: 'RANDOM', consistentHash: { httpHeaderName: 'x' } } } }, code, /^spec\.trafficPolicy\.loadBalancer: set exactly one/);
  rejects(parseDestinationRule, { host: 'a', subsets: [{ name: 'v1', labels: {} }, { name: 'v1', labels: {} }] }, code, /^spec\.subsets\.1\.name:/);
});

test('VirtualService: the fault-injection task\'s objects parse; percentages default to 100', () => {
  const vs = parseVirtualService({
    metadata: meta,
    spec: {
      hosts: ['ratings'],
      http: [
        { match: [{ headers: { 'end-user': { exact: 'jason' } } }], fault: { delay: { percentage: { value: 100.0 }, fixedDelay: '7s' } }, route: [{ destination: { host: 'ratings', subset: 'v1' } }] },
        { fault: { abort: { httpStatus: 500, percentage: { value: 50 } } }, route: [{ destination: { host: 'ratings', subset: 'v1' } }] },
      ],
    },
  });
  assert.deepEqual(vs.http[0]?.fault, { delay: { ms: 7000, percent: 100 } });
  assert.deepEqual(vs.http[0]?.match, [[{ name: 'end-user', match: { kind: 'exact', value: 'jason' } }]]);
  assert.deepEqual(vs.http[1]?.fault, { abort: { httpStatus: 500, percent: 50 } });
  assert.equal(vs.http[1]?.route[0]?.weight, 100);
});

test('VirtualService: invalid fields are errors naming the field', () => {
  const code = 'ERR_VIRTUAL_SERVICE_INVALID';
  const r = [{ destination: { host: 'a' } }];
  rejects(parseVirtualService, { hosts: ['a'], http: [{ fault: { abort: { httpStatus: 500, grpcStatus: 'UNAVAILABLE' } }, route: r }] }, code, /^spec\.http\.0\.fault\.abort: set exactly one/);
  rejects(parseVirtualService, { hosts: ['a'], http: [{ fault: { abort: { httpStatus: 500, percentage: { value: 120 } } }, route: r }] }, code, /^spec\.http\.0\.fault\.abort\.percentage\.value:/);
  rejects(parseVirtualService, { hosts: ['a'], http: [{ route: r, retries: { attempts: 3 } }] }, code, /^spec\.http\.0: .*retries/);
  rejects(parseVirtualService, { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' }, weight: 60 }, { destination: { host: 'b' }, weight: 30 }] }] }, code, /^spec\.http\.0\.route: weights must add up to 100/);
  rejects(parseVirtualService, { hosts: ['a'], http: [{ match: [{ headers: { u: { regex: '(a)\\1' } } }], route: r }] }, code, /^spec\.http\.0\.match\.0\.headers\.u\.regex:/);
});

test('BackendTrafficPolicy: Envoy Gateway\'s rateLimit.local shape; burst defaults to requests', () => {
  const p = parseBackendTrafficPolicy({ metadata: meta, spec: { targetRefs: [{ kind: 'Service', name: 'web' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 10, unit: 'Second', burst: 5 } }] } } } });
  assert.deepEqual(p.rateLimit, { ratePerSecond: 10, burst: 5, requests: 10, unit: 'Second' });
  assert.deepEqual(p.targets, [{ group: '', kind: 'Service', namespace: 'demo', name: 'web' }]);
  const m = parseBackendTrafficPolicy({ metadata: meta, spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'web' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 120, unit: 'Minute' } }] } } } });
  assert.deepEqual(m.rateLimit, { ratePerSecond: 2, burst: 120, requests: 120, unit: 'Minute' });
  const code = 'ERR_TRAFFIC_POLICY_INVALID';
  rejects(parseBackendTrafficPolicy, { targetRefs: [{ kind: 'Pod', name: 'x' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 1, unit: 'Second' } }] } } }, code, /^spec\.targetRefs\.0\.kind:/);
  rejects(parseBackendTrafficPolicy, { targetRefs: [{ kind: 'Service', name: 'x' }], rateLimit: { type: 'Global' } }, code, /^spec\.rateLimit\.type:/);
  rejects(parseBackendTrafficPolicy, { targetRefs: [{ kind: 'Service', name: 'x' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 0, unit: 'Second' } }] } } }, code, /^spec\.rateLimit\.local\.rules\.0\.limit\.requests:/);
  rejects(parseBackendTrafficPolicy, { targetRefs: [{ group: 'apps', kind: 'Service', name: 'x' }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests: 1, unit: 'Second' } }] } } }, code, /^spec\.targetRefs\.0\.group:/);
});

test('hosts resolve as Istio does: short names in the object\'s namespace, FQDNs in theirs', () => {
  assert.deepEqual(resolveHost('ratings', 'demo', 'cluster.local'), { namespace: 'demo', name: 'ratings' });
  assert.deepEqual(resolveHost('ratings.prod', 'demo', 'cluster.local'), { namespace: 'prod', name: 'ratings' });
  assert.deepEqual(resolveHost('ratings.prod.svc.cluster.local', 'demo', 'cluster.local'), { namespace: 'prod', name: 'ratings' });
  assert.equal(resolveHost('*.example.com', 'demo', 'cluster.local'), undefined);
  assert.equal(resolveHost('www.example.com', 'demo', 'cluster.local'), undefined);
});

test('the resilience table: rate limits by HTTPRoute, then Service, then Gateway; conflicts are reported; warren routes prints it', () => {
  const dr = (name: string, host: string) => parseDestinationRule({ metadata: { name, namespace: 'demo' }, spec: { host, trafficPolicy: { connectionPool: { tcp: { maxConnections: 2 } } } } });
  const btp = (name: string, kind: string, target: string, requests: number) =>
    parseBackendTrafficPolicy({ metadata: { name, namespace: 'demo' }, spec: { targetRefs: [{ kind, name: target }], rateLimit: { type: 'Local', local: { rules: [{ limit: { requests, unit: 'Second' } }] } } } });
  const vs = (name: string, host: string) => parseVirtualService({ metadata: { name, namespace: 'demo' }, spec: { hosts: [host], http: [{ route: [{ destination: { host } }] }] } });
  const routed = buildRouteTable([parseHttpRoute({ metadata: { name: 'web', namespace: 'demo' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } })], { namespace: 'demo', name: 'waypoint' });
  const table = buildResilienceTable(
    { destinationRules: [dr('b', 'api'), dr('a', 'api.demo.svc.cluster.local')], virtualServices: [vs('web', 'web'), vs('api', 'api')], trafficPolicies: [btp('svc', 'Service', 'api', 10), btp('route', 'HTTPRoute', 'api', 20), btp('gw', 'Gateway', 'waypoint', 30)] },
    routed,
    () => [80],
    { namespace: 'demo', name: 'waypoint' },
    'cluster.local',
  );
  const api = { namespace: 'demo', name: 'api' };
  assert.equal(table.destinationRule(api)?.name, 'a', 'first by name wins');
  assert.deepEqual(table.rejected.map((r) => `${r.kind} ${r.name} ${r.reason}`), ['DestinationRule b Conflicted', 'VirtualService web Conflicted']);
  assert.equal(table.virtualService({ namespace: 'demo', name: 'web' }), undefined, 'an HTTPRoute routes web');
  assert.equal(table.virtualService(api)?.name, 'api');
  assert.equal(table.rateLimit(api, api)?.limit.requests, 20);
  assert.equal(table.rateLimit(api, undefined)?.limit.requests, 10);
  assert.equal(table.rateLimit({ namespace: 'demo', name: 'other' }, undefined)?.limit.requests, 30);
  const text = formatResilience(table.describe());
  assert.match(text, /DestinationRule demo\/a → demo\/api\n {2}port 80: pool maxConnections 2 /);
  assert.match(text, /BackendTrafficPolicy demo\/route → HTTPRoute demo\/api: local rate limit 20\/Second burst 20/);
});
