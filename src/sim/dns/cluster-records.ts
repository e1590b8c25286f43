import { isIP } from 'node:net';
import { QTYPE, RCODE, type DnsAnswer, type LookupResult } from './dns-message.js';

/**
 * The answers CoreDNS's kubernetes plugin gives for Service names, as a pure
 * function of plain data. Only `<svc>.<ns>.svc.<domain>` names carry
 * records; everything else under the domain is NXDOMAIN, and anything
 * outside it is REFUSED because the simulator must never forward a query
 * off the machine.
 */

export interface ClusterService {
  name: string;
  namespace: string;
  clusterIP?: string;
  headless: boolean;
}

/** Ready addresses of one EndpointSlice (a Service may have several). */
export interface ClusterEndpoints {
  service: string;
  namespace: string;
  addresses: string[];
}

export interface ClusterRecordData {
  services: readonly ClusterService[];
  endpoints: readonly ClusterEndpoints[];
  domain: string;
}

export interface ClusterRecords {
  lookup(qname: string, qtype: number): LookupResult;
}

/** CoreDNS's default for the kubernetes plugin: short, because Services come and go. */
export const RECORD_TTL_SECONDS = 5;

const normalize = (name: string): string => name.replace(/\.$/, '').toLowerCase();

export function buildClusterRecords(data: ClusterRecordData): ClusterRecords {
  const domain = normalize(data.domain);
  const serviceSuffix = `.svc.${domain}`;
  // Keyed by the name's part before `.svc.<domain>`, i.e. `<svc>.<ns>`.
  const addresses = new Map<string, string[]>();
  const namespaces = new Set<string>();
  const endpointsOf = new Map<string, Set<string>>();
  for (const ep of data.endpoints) {
    const key = `${normalize(ep.service)}.${normalize(ep.namespace)}`;
    const set = endpointsOf.get(key) ?? new Set<string>();
    for (const a of ep.addresses) if (isIP(a) !== 0) set.add(a);
    endpointsOf.set(key, set);
  }
  for (const svc of data.services) {
    const key = `${normalize(svc.name)}.${normalize(svc.namespace)}`;
    namespaces.add(normalize(svc.namespace));
    const ips = svc.headless
      ? [...(endpointsOf.get(key) ?? [])]
      : svc.clusterIP !== undefined && isIP(svc.clusterIP) !== 0
        ? [svc.clusterIP]
        : [];
    addresses.set(key, ips.sort());
  }

  return {
    lookup(qname: string, qtype: number): LookupResult {
      const name = normalize(qname);
      if (name !== domain && !name.endsWith(`.${domain}`)) return { rcode: RCODE.REFUSED, answers: [] };
      if (name.endsWith(serviceSuffix)) {
        const ips = addresses.get(name.slice(0, -serviceSuffix.length));
        if (ips !== undefined) return { rcode: RCODE.NOERROR, answers: answersFor(name, qtype, ips) };
      }
      // Empty non-terminals exist (RFC 8020): NXDOMAIN for them would tell
      // caching resolvers that the Service names below do not exist either.
      const nonTerminal = name === domain || name === `svc.${domain}` || (name.endsWith(serviceSuffix) && namespaces.has(name.slice(0, -serviceSuffix.length)));
      return { rcode: nonTerminal ? RCODE.NOERROR : RCODE.NXDOMAIN, answers: [] };
    },
  };
}

/** An existing name with no address of the asked family is NOERROR with no answers (NODATA), never NXDOMAIN. */
function answersFor(name: string, qtype: number, ips: readonly string[]): DnsAnswer[] {
  const a = qtype === QTYPE.A || qtype === QTYPE.ANY;
  const aaaa = qtype === QTYPE.AAAA || qtype === QTYPE.ANY;
  const out: DnsAnswer[] = [];
  for (const address of ips) {
    const family = isIP(address);
    if ((family === 4 && a) || (family === 6 && aaaa)) out.push({ name, ttl: RECORD_TTL_SECONDS, type: family === 4 ? QTYPE.A : QTYPE.AAAA, address });
  }
  return out;
}
