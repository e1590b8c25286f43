import type { KubeObject } from '../apiserver/store.js';
import type { KubeProxyEndpoints, KubeProxyService } from './service-rules.js';

const proto = (p: unknown): 'TCP' | 'UDP' | undefined => (p === undefined || p === 'TCP' ? 'TCP' : p === 'UDP' ? 'UDP' : undefined);

/**
 * What kube-proxy programs, from the API objects: ClusterIP Services (not
 * headless) and the ready endpoints of their EndpointSlices, one entry per
 * slice port. Malformed objects are skipped, never fatal.
 */
export function proxyInput(services: KubeObject[], slices: KubeObject[]): { services: KubeProxyService[]; endpoints: KubeProxyEndpoints[] } {
  const out: { services: KubeProxyService[]; endpoints: KubeProxyEndpoints[] } = { services: [], endpoints: [] };
  for (const s of services) {
    const ip = s.spec?.clusterIP;
    if (typeof ip !== 'string' || ip === 'None' || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) continue;
    const ports = ((s.spec?.ports ?? []) as Array<Record<string, unknown>>).flatMap((p) => {
      const protocol = proto(p.protocol);
      if (typeof p.port !== 'number' || protocol === undefined) return [];
      return [{ ...(typeof p.name === 'string' && p.name !== '' ? { name: p.name } : {}), port: p.port, protocol, targetPort: typeof p.targetPort === 'number' ? p.targetPort : p.port }];
    });
    out.services.push({ namespace: s.metadata.namespace, name: s.metadata.name, clusterIP: ip, ports });
  }
  for (const slice of slices) {
    const service = slice.metadata.labels?.['kubernetes.io/service-name'];
    if (typeof service !== 'string' || slice.addressType !== 'IPv4') continue;
    const addresses = ((slice.endpoints ?? []) as Array<{ addresses?: unknown; conditions?: { ready?: boolean } }>)
      .filter((e) => e.conditions?.ready !== false && Array.isArray(e.addresses))
      .flatMap((e) => (e.addresses as unknown[]).filter((a): a is string => typeof a === 'string'));
    for (const p of (slice.ports ?? []) as Array<{ name?: string; port?: number }>) {
      if (typeof p.port !== 'number') continue;
      out.endpoints.push({ namespace: slice.metadata.namespace, service, ...(p.name ? { portName: p.name } : {}), port: p.port, addresses });
    }
  }
  return out;
}
