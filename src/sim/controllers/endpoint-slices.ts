import type { KubeObject } from '../apiserver/store.js';
import { isPodReady } from './pod-conditions.js';

export const MANAGED_BY = 'endpointslice-controller.k8s.io';

const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined): boolean =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** A named targetPort resolves per pod, through the container port of that name. */
function resolvePort(target: unknown, pod: KubeObject): number | undefined {
  if (typeof target === 'number') return target;
  if (typeof target === 'string' && /^\d+$/.test(target)) return Number(target);
  for (const c of (pod.spec?.containers ?? []) as Array<{ ports?: Array<{ name?: string; containerPort: number }> }>) {
    const port = c.ports?.find((p) => p.name === target);
    if (port) return port.containerPort;
  }
  return undefined;
}

/**
 * The EndpointSlice a Service with a selector should have: its ready pods
 * (IPv4 addresses), ports resolved through targetPort. One slice per
 * Service, named after it; Services without a selector are left to their
 * owners (as the `kubernetes` Service is).
 */
export function desiredSlice(service: KubeObject, pods: KubeObject[]): KubeObject | undefined {
  const selector = service.spec?.selector as Record<string, string> | undefined;
  if (selector === undefined || Object.keys(selector).length === 0) return undefined;
  const members = pods
    .filter((p) => p.metadata.namespace === service.metadata.namespace && matches(selector, p.metadata.labels) && isPodReady(p) && p.status?.podIP)
    .sort((a, b) => String(a.status.podIP).localeCompare(String(b.status.podIP)));
  const servicePorts = (service.spec?.ports ?? []) as Array<{ name?: string; port: number; protocol?: string; targetPort?: unknown }>;
  const first = members[0];
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: service.metadata.name,
      namespace: service.metadata.namespace,
      labels: { 'kubernetes.io/service-name': service.metadata.name, 'endpointslice.kubernetes.io/managed-by': MANAGED_BY },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service.metadata.name, uid: service.metadata.uid, controller: true, blockOwnerDeletion: true }],
    },
    addressType: 'IPv4',
    endpoints: members.map((p) => ({
      addresses: [p.status.podIP],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: p.spec?.nodeName,
      targetRef: { kind: 'Pod', namespace: p.metadata.namespace, name: p.metadata.name, uid: p.metadata.uid },
    })),
    ports: servicePorts.map((sp) => ({
      ...(sp.name ? { name: sp.name } : {}),
      protocol: sp.protocol ?? 'TCP',
      port: (first && resolvePort(sp.targetPort ?? sp.port, first)) ?? (typeof sp.targetPort === 'number' ? sp.targetPort : sp.port),
    })),
  };
}

/** Whether two slices differ in what consumers read (endpoints, ports, labels). */
export function sliceChanged(current: KubeObject, desired: KubeObject): boolean {
  return (
    JSON.stringify([current.endpoints ?? [], current.ports ?? [], current.metadata.labels ?? {}]) !==
    JSON.stringify([desired.endpoints, desired.ports, desired.metadata.labels])
  );
}
