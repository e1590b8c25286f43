import { ApiError } from './api-error.js';
import type { KubeObject } from './store.js';

/**
 * ClusterIPs from 10.96.0.0/16 (SERVICE_CIDR in sim/topology/plan.ts): the
 * first address is the `kubernetes` service's and .10 the DNS service's, as
 * in kubeadm clusters; others are handed out in order.
 */
const BASE = (10 << 24) | (96 << 16);
const SIZE = 1 << 16;
const RESERVED_UNTIL = 11; // .0 network, .1 kubernetes, .10 kube-dns

const toIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
function toInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export class ClusterIpAllocator {
  private next = RESERVED_UNTIL;

  constructor(private readonly services: () => KubeObject[]) {}

  allocateClusterIp(requested: string | undefined): string {
    const used = new Set(this.services().map((s) => s.spec?.clusterIP as string | undefined));
    if (requested !== undefined && requested !== '') {
      const n = toInt(requested);
      if (n === undefined || (n & 0xffff0000) >>> 0 !== BASE >>> 0) {
        throw new ApiError('Invalid', `spec.clusterIP: Invalid value: "${requested}": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16`);
      }
      if (used.has(requested)) throw new ApiError('Invalid', `spec.clusterIP: Invalid value: "${requested}": provided IP is already allocated`);
      return requested;
    }
    for (let i = 0; i < SIZE; i++) {
      const candidate = RESERVED_UNTIL + ((this.next - RESERVED_UNTIL + i) % (SIZE - RESERVED_UNTIL - 1));
      const ip = toIp((BASE + candidate) >>> 0);
      if (!used.has(ip)) {
        this.next = candidate + 1;
        return ip;
      }
    }
    throw new ApiError('InternalError', 'the service ClusterIP range 10.96.0.0/16 is full');
  }
}
