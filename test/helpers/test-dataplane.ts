import type { V1Pod } from '@kubernetes/client-node';
import { createRootCa } from '../../src/ca/signer.js';
import type { WorkloadCertificate } from '../../src/identity/cert-manager.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';
import { TrustBundle } from '../../src/identity/trust-bundle.js';
import { buildClusterIndex } from '../../src/k8s/cluster-index.js';
import { REDIRECTION_ANNOTATION } from '../../src/k8s/enrollment.js';
import { buildWaypointIndex } from '../../src/k8s/waypoint-index.js';
import { authorize } from '../../src/policy/authorization.js';
import type { ConnectionObserver } from '../../src/telemetry/connection-observer.js';
import { ConnectionRegistry } from '../../src/tunnel/connection-registry.js';
import type { DataPlane, LoopPath } from '../../src/tunnel/dataplane.js';
import { DEFAULT_HBONE_LIMITS, HboneGuard } from '../../src/tunnel/hbone-limits.js';
import type { PodProxyOptions } from '../../src/tunnel/pod-proxy.js';
import type { TestPod } from './netns.js';
import { issueWorkloadCert } from './workload-certs.js';

/** A test pod as the API server would list it: service account and UID named after it, enrolled or not. */
function v1Pod(namespace: string, name: string, pod: TestPod, enrolled: boolean): V1Pod {
  return {
    metadata: { name, namespace, uid: `uid-${name}`, annotations: enrolled ? { [REDIRECTION_ANNOTATION]: 'enabled' } : {} },
    spec: { serviceAccountName: name, nodeName: 'node-1', containers: [] },
    status: { phase: 'Running', podIPs: [{ ip: pod.ipv4 }, { ip: pod.ipv6 }] },
  };
}

/**
 * What the node agent shares with its pods' proxies, for a test process that is
 * the agent: a fresh root CA, a workload certificate for each pod (its service
 * account is its name), the pods in the cluster index, no policy, no waypoint;
 * loops refused are recorded.
 */
export async function testDataPlane(trustDomain: string, namespace: string, pods: ReadonlyArray<{ name: string; pod: TestPod; enrolled: boolean }>) {
  const root = await createRootCa(trustDomain);
  const bundle = new TrustBundle(root.certPem);
  const certs = new Map<string, WorkloadCertificate>();
  for (const p of pods) certs.set(p.name, await issueWorkloadCert(root, { trustDomain, namespace, serviceAccount: p.name }));
  const index = buildClusterIndex(pods.map((p) => v1Pod(namespace, p.name, p.pod, p.enrolled)), [], []);
  const noWaypoints = buildWaypointIndex({ namespaces: [], services: [], pods: [], gateways: [] });
  const loops: LoopPath[] = [];
  const dataplane: DataPlane = {
    index: () => index,
    waypoints: () => noWaypoints,
    trustDomain,
    bundle,
    certificate: (id) => certs.get(id.serviceAccount),
    authorize: (r) => authorize([], 'warren-system', r),
    plaintextAllowed: () => true,
    hbone: new HboneGuard(DEFAULT_HBONE_LIMITS),
    loopRefused: (path) => void loops.push(path),
  };
  return { dataplane, bundle, certs, loops };
}

const quietTelemetry: ConnectionObserver = { opened: () => ({ closed: () => {} }), refused: () => {} };

/** A pod proxy's options as the enrollment manager gives them: no labels, its own entry in a registry, telemetry dropped. */
export function proxyOptions(dataplane: DataPlane, p: { pod: string; namespace: string; identity: SpiffeId; netns: TestPod }): PodProxyOptions {
  return {
    pod: p.pod,
    namespace: p.namespace,
    labels: () => ({}),
    netns: p.netns.path,
    ips: [p.netns.ipv4, p.netns.ipv6],
    identity: p.identity,
    dataplane,
    telemetry: quietTelemetry,
    connections: new ConnectionRegistry().forPod(),
  };
}
