/**
 * One pod's warren proxy for the dataplane benchmark, as its own process (as
 * each pod's node agent would run it): src/tunnel/pod-proxy.ts with a static
 * DataPlane — a cluster index of the two synthetic pods (both enrolled), the
 * benchmark's root as trust bundle, its certificate from PEM files, allow-all
 * authorization. The listeners are made inside the pod's netns by the addon.
 *
 *   node dist/bench/dataplane-proxy.js <netns path> <pod name> <cert dir> [pooled|unpooled|real|native]
 *
 * pooled (the default): allow-all, access log entries counted, not written.
 * unpooled: the same with the HBONE pool off (a TLS connection per CONNECT stream).
 * real: the agent's configuration: AuthorizationPolicies loaded (benchPolicies: the pods'
 * own namespace has ALLOW, DENY and `when` policies, the root namespace a mesh-wide DENY,
 * 50 other namespaces the policy-eval mix) and every access log entry written as the
 * agent writes it (pino JSON lines, `log: access`) to <cert dir>/access-<pod name>.log.
 * native: as pooled, with NativePodProxy on the native data path (DATAPLANE_NATIVE_THREADS
 * worker threads; default one per core), as `warren node --dataplane native`.
 *
 * <cert dir> holds pods.json ([{ name, serviceAccount, ips }]), root.pem and,
 * per pod, <name>.pem (leaf first, then the CA chain) and <name>.key.
 * Prints "ready" once listening. SIGUSR2 runs a full GC when --expose-gc is
 * set (the benchmark reads RSS after it) and, with DATAPLANE_MEMLOG=1 in the
 * environment, prints process.memoryUsage(), the C heap's figures and the native
 * data path's counts to stderr; SIGTERM closes and exits.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import type { V1Pod } from '@kubernetes/client-node';
import type { WorkloadCertificate } from '../src/identity/cert-manager.js';
import { formatSpiffeId, type SpiffeId } from '../src/identity/spiffe.js';
import { TrustBundle } from '../src/identity/trust-bundle.js';
import { buildClusterIndex } from '../src/k8s/cluster-index.js';
import { buildWaypointIndex } from '../src/k8s/waypoint-index.js';
import { REDIRECTION_ANNOTATION } from '../src/k8s/enrollment.js';
import { authorize } from '../src/policy/authorization.js';
import type { DataPlane } from '../src/tunnel/dataplane.js';
import { availableParallelism } from 'node:os';
import { NativeHub } from '../src/tunnel/native-hub.js';
import { NativePodProxy } from '../src/tunnel/native-pod-proxy.js';
import { boundCHeapRetention } from '../src/native/c-heap.js';
import { PodProxy } from '../src/tunnel/pod-proxy.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard } from '../src/tunnel/hbone-limits.js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { parseAuthorizationPolicy, type AuthorizationPolicy } from '../src/policy/authorization.js';
import { policyObjects } from './policy-eval.js';
import { ConnectionTelemetry } from '../src/telemetry/connection-telemetry.js';
import { ConnectionRegistry } from '../src/tunnel/connection-registry.js';
import { cHeapStats } from '../src/native/c-heap.js';

export const BENCH_NAMESPACE = 'bench';
export const TRUST_DOMAIN = 'cluster.local';

export interface BenchPod {
  name: string;
  serviceAccount: string;
  ips: string[];
}

export type ProxyMode = 'pooled' | 'unpooled' | 'real' | 'native';
const ROOT_NAMESPACE = 'warren-system';

/**
 * What a cluster with policies has loaded: in the pods' namespace an ALLOW that admits A's
 * identity to B's ports (so the benchmark's traffic is allowed by a rule, not by the absence
 * of policies), DENYs that do not match it and a `when`; a mesh-wide DENY; and 50 policies of
 * other namespaces (bench/policy-eval.ts), which the index skips.
 */
export function benchPolicies(): AuthorizationPolicy[] {
  const principal = `${TRUST_DOMAIN}/ns/${BENCH_NAMESPACE}/sa/client`;
  const own = [
    { name: 'allow-client', spec: { selector: { matchLabels: { app: 'b' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: [principal] } }], to: [{ operation: { ports: ['8080', '5201'] } }] }] } },
    { name: 'deny-blocked', spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['192.0.2.0/24', '198.51.100.0/24'] } }] }] } },
    { name: 'deny-foreign', spec: { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: [BENCH_NAMESPACE, ROOT_NAMESPACE, 'monitoring'] } }] }] } },
    { name: 'allow-scrape', spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['monitoring'] } }], to: [{ operation: { ports: ['15020'] } }] }] } },
    { name: 'allow-when', spec: { action: 'ALLOW', rules: [{ when: [{ key: 'source.principal', values: [`${TRUST_DOMAIN}/ns/ops/sa/*`] }, { key: 'destination.port', notValues: ['9090'] }] }] } },
  ].map((p) => ({ metadata: { namespace: BENCH_NAMESPACE, name: p.name }, spec: p.spec }));
  const mesh = { metadata: { namespace: ROOT_NAMESPACE, name: 'mesh-deny' }, spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['203.0.113.0/24'] } }] }] } };
  return [...own, mesh, ...policyObjects(50)].map(parseAuthorizationPolicy);
}

export const identityOf = (pod: BenchPod): SpiffeId => ({ trustDomain: TRUST_DOMAIN, namespace: BENCH_NAMESPACE, serviceAccount: pod.serviceAccount });

function v1Pod(pod: BenchPod): V1Pod {
  return {
    metadata: { name: pod.name, namespace: BENCH_NAMESPACE, uid: `bench-${pod.name}`, labels: { app: pod.name }, annotations: { [REDIRECTION_ANNOTATION]: 'enabled' } },
    spec: { serviceAccountName: pod.serviceAccount, nodeName: `node-${pod.name}`, containers: [] },
    status: { phase: 'Running', podIPs: pod.ips.map((ip) => ({ ip })) },
  };
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

function loadCertificate(dir: string, pod: BenchPod): WorkloadCertificate {
  const chainPem = splitPem(readFileSync(join(dir, `${pod.name}.pem`), 'utf8'));
  const leaf = new X509Certificate(chainPem[0]!);
  return {
    identity: identityOf(pod),
    privateKeyPem: readFileSync(join(dir, `${pod.name}.key`), 'utf8'),
    chainPem,
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    receivedAt: new Date(),
  };
}

const env = process.env;

async function main(): Promise<void> {
  const [netns, name, dir, modeArg = 'pooled'] = process.argv.slice(2);
  if (netns === undefined || name === undefined || dir === undefined || !['pooled', 'unpooled', 'real', 'native'].includes(modeArg)) {
    process.stderr.write('usage: dataplane-proxy <netns path> <pod name> <cert dir> [pooled|unpooled|real|native]\n');
    process.exit(2);
  }
  const mode = modeArg as ProxyMode;
  // the C heap as the agent bounds it (node-agent.ts), so the proxies' RSS and CPU are the agent's
  if (!boundCHeapRetention()) throw new Error('glibc refused the heap trim threshold');
  const policies = mode === 'real' ? benchPolicies() : [];
  const pods = JSON.parse(readFileSync(join(dir, 'pods.json'), 'utf8')) as BenchPod[];
  const self = pods.find((p) => p.name === name);
  if (self === undefined) throw new Error(`pod ${name} is not in ${dir}/pods.json`);
  const index = buildClusterIndex(pods.map(v1Pod), [], []);
  const certs = new Map(pods.map((p) => [formatSpiffeId(identityOf(p)), loadCertificate(dir, p)]));
  const noWaypoints = buildWaypointIndex({ namespaces: [], services: [], pods: [], gateways: [] });
  const dataplane: DataPlane = {
    index: () => index,
    waypoints: () => noWaypoints,
    trustDomain: TRUST_DOMAIN,
    bundle: new TrustBundle(readFileSync(join(dir, 'root.pem'), 'utf8')),
    certificate: (id) => certs.get(formatSpiffeId(id)),
    authorize: (r) => authorize(policies, ROOT_NAMESPACE, r), // no policy (pooled, unpooled): allowed, as the agent decides it
    plaintextAllowed: () => true,
    hbone: new HboneGuard({ ...DEFAULT_HBONE_LIMITS, outboundPooling: mode !== 'unpooled' }, (reason, d) => process.stderr.write(`dataplane-proxy ${name}: ${reason}: ${d.message}\n`)),
    loopRefused: (path, reason) => process.stderr.write(`dataplane-proxy ${name}: ${path}: ${reason}\n`),
  };
  // The agent's own telemetry (Istio metrics per connection). Access log entries: in mode real
  // written as the agent writes them (src/agent/node-agent.ts accessLogWriter: pino, a child
  // logger `log: access`, level info); otherwise only checked for failures. Failures are counted
  // and summed up on exit either way (iperf3 resets its data connections at the end of every test).
  const errors = new Map<string, number>();
  const access = mode === 'real' ? pino({ base: { component: 'warren-node' } }, pino.destination({ dest: join(dir, `access-${name}.log`) })).child({ log: 'access' }) : undefined;
  let written = 0;
  const telemetry = new ConnectionTelemetry({
    registry: new Registry(),
    index: () => index,
    clusterDomain: 'cluster.local',
    accessLog: (e) => {
      if (access !== undefined) {
        access.info(e, 'connection');
        written++;
      }
      if (e['outcome'] === 'ok') return;
      const k = `${String(e['direction'])} ${JSON.stringify(e['dst'])}: ${String(e['reason'])}`;
      errors.set(k, (errors.get(k) ?? 0) + 1);
    },
  });
  const options = {
    pod: `${BENCH_NAMESPACE}/${name}`,
    namespace: BENCH_NAMESPACE,
    labels: () => ({ app: name }),
    connections: new ConnectionRegistry().forPod(),
    netns,
    ips: self.ips,
    identity: identityOf(self),
    dataplane,
    telemetry,
  };
  const hub = mode === 'native' ? new NativeHub(dataplane, Number(env['DATAPLANE_NATIVE_THREADS'] ?? availableParallelism())) : undefined;
  const proxy = hub === undefined ? await PodProxy.start(options) : await NativePodProxy.start(options, hub);
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    // DATAPLANE_MEMLOG=1: where the memory is (JS heap, external, array buffers, C heap; flows, sessions), for diagnosis.
    if (env['DATAPLANE_MEMLOG']) process.stderr.write(`dataplane-proxy ${name}: ${JSON.stringify({ ...process.memoryUsage(), cHeap: cHeapStats(), native: hub?.stats() })}\n`);
    // DATAPLANE_HEAPSNAP=<dir>: a heap snapshot at every reading, for finding what an idle connection holds.
    if (env['DATAPLANE_HEAPSNAP']) process.stderr.write(`dataplane-proxy ${name}: ${writeHeapSnapshot(join(env['DATAPLANE_HEAPSNAP'], `${name}-${Date.now()}.heapsnapshot`))}\n`);
  });
  // DATAPLANE_GCLOG=1: garbage collections by kind (count, ms) on exit, for diagnosis.
  const gcs = new Map<string, { n: number; ms: number }>();
  if (env['DATAPLANE_GCLOG']) {
    const kinds: Record<number, string> = { [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = kinds[(e as unknown as { detail: { kind: number } }).detail.kind] ?? 'other';
        const g = gcs.get(kind) ?? { n: 0, ms: 0 };
        gcs.set(kind, { n: g.n + 1, ms: g.ms + e.duration });
      }
    }).observe({ entryTypes: ['gc'] });
  }
  process.on('SIGTERM', () => {
    for (const [kind, g] of gcs) process.stderr.write(`dataplane-proxy ${name}: ${g.n} ${kind} GCs, ${g.ms.toFixed(0)} ms\n`);
    const top = [...errors.entries()].sort((x, y) => y[1] - x[1]).slice(0, 4);
    for (const [k, n] of top) process.stderr.write(`dataplane-proxy ${name}: ${n} × ${k}\n`);
    if (access !== undefined) process.stderr.write(`dataplane-proxy ${name}: ${written} access log entries written\n`);
    void proxy.close(0).finally(() => {
      hub?.stop();
      process.exit(0);
    });
  });
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`dataplane-proxy: ${String(err)}\n`);
  process.exit(1);
});
