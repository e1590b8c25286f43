/**
 * One pod's warren proxy for the dataplane benchmark, as its own process (as
 * each pod's node agent would run it): src/tunnel/pod-proxy.ts with a static
 * DataPlane — a cluster index of the two synthetic pods (both enrolled), the
 * benchmark's root as trust bundle, its certificate from PEM files, allow-all
 * authorization. The listeners are made inside the pod's netns by the addon.
 *
 *   node dist/bench/dataplane-proxy.js <netns path> <pod name> <cert dir>
 *
 * <cert dir> holds pods.json ([{ name, serviceAccount, ips }]), root.pem and,
 * per pod, <name>.pem (leaf first, then the CA chain) and <name>.key.
 * Prints "ready" once listening. SIGUSR2 runs a full GC when --expose-gc is
 * set (the benchmark reads RSS after it) and, with DATAPLANE_MEMLOG=1 in the
 * environment, prints process.memoryUsage() to stderr; SIGTERM closes and exits.
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
import { PodProxy } from '../src/tunnel/pod-proxy.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard } from '../src/tunnel/hbone-limits.js';
import { Registry } from 'prom-client';
import { ConnectionTelemetry } from '../src/telemetry/connection-telemetry.js';

export const BENCH_NAMESPACE = 'bench';
export const TRUST_DOMAIN = 'cluster.local';

export interface BenchPod {
  name: string;
  serviceAccount: string;
  ips: string[];
}

export const identityOf = (pod: BenchPod): SpiffeId => ({ trustDomain: TRUST_DOMAIN, namespace: BENCH_NAMESPACE, serviceAccount: pod.serviceAccount });

function v1Pod(pod: BenchPod): V1Pod {
  return {
    metadata: { name: pod.name, namespace: BENCH_NAMESPACE, uid: `bench-${pod.name}`, annotations: { [REDIRECTION_ANNOTATION]: 'enabled' } },
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
  const [netns, name, dir] = process.argv.slice(2);
  if (netns === undefined || name === undefined || dir === undefined) {
    process.stderr.write('usage: dataplane-proxy <netns path> <pod name> <cert dir>\n');
    process.exit(2);
  }
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
    authorize: (r) => authorize([], 'warren-system', r), // no policy: allowed, as the agent decides it
    plaintextAllowed: () => true,
    hbone: new HboneGuard(DEFAULT_HBONE_LIMITS, (reason, d) => process.stderr.write(`dataplane-proxy ${name}: ${reason}: ${d.message}\n`)),
    loopRefused: (path, reason) => process.stderr.write(`dataplane-proxy ${name}: ${path}: ${reason}\n`),
  };
  // The agent's own telemetry (Istio metrics per connection); access log entries, which the
  // agent would write as JSON lines, are only checked for failures, counted and summed up on
  // exit (iperf3 resets its data connections at the end of every test).
  const errors = new Map<string, number>();
  const telemetry = new ConnectionTelemetry({
    registry: new Registry(),
    index: () => index,
    clusterDomain: 'cluster.local',
    accessLog: (e) => {
      if (e['outcome'] === 'ok') return;
      const k = `${String(e['direction'])} ${JSON.stringify(e['dst'])}: ${String(e['reason'])}`;
      errors.set(k, (errors.get(k) ?? 0) + 1);
    },
  });
  const proxy = await PodProxy.start({
    pod: `${BENCH_NAMESPACE}/${name}`,
    namespace: BENCH_NAMESPACE,
    labels: {},
    netns,
    ips: self.ips,
    identity: identityOf(self),
    dataplane,
    telemetry,
  });
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    // DATAPLANE_MEMLOG=1: where the memory is (JS heap, external, array buffers), for diagnosis.
    if (env['DATAPLANE_MEMLOG']) process.stderr.write(`dataplane-proxy ${name}: ${JSON.stringify(process.memoryUsage())}\n`);
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
    void proxy.close(0).finally(() => process.exit(0));
  });
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`dataplane-proxy: ${String(err)}\n`);
  process.exit(1);
});
