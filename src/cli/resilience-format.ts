import type { ResilienceView } from '../resilience/resilience-table.js';

/** The effective resilience policies of a waypoint, for `warren routes` (docs/architecture.md §15). */
export function formatResilience(view: ResilienceView | undefined): string {
  if (view === undefined) return '';
  const lines: string[] = [];
  for (const dr of view.destinationRules) {
    lines.push('', `DestinationRule ${dr.rule} → ${dr.host}${dr.subsets.length ? ` (subsets ${dr.subsets.join(', ')})` : ''}`);
    for (const [port, p] of Object.entries(dr.ports)) {
      const parts = [
        p.connectionPool ? `pool maxConnections ${p.connectionPool.maxConnections} pending ${p.connectionPool.http1MaxPendingRequests} maxRequests ${p.connectionPool.http2MaxRequests} maxRetries ${p.connectionPool.maxRetries}` : '',
        p.outlierDetection ? `outlier 5xx ${p.outlierDetection.consecutive5xxErrors} gateway ${p.outlierDetection.consecutiveGatewayErrors} interval ${p.outlierDetection.intervalMs}ms ejection ${p.outlierDetection.baseEjectionTimeMs}ms max ${p.outlierDetection.maxEjectionPercent}%` : '',
        p.loadBalancer ? `lb ${'simple' in p.loadBalancer ? p.loadBalancer.simple : `hash header ${p.loadBalancer.consistentHashHeader}`}` : '',
      ].filter((x) => x !== '');
      lines.push(`  port ${port}: ${parts.join('; ') || '(defaults)'}`);
    }
  }
  for (const vs of view.virtualServices) {
    lines.push('', `VirtualService ${vs.virtualService} → ${vs.host}`);
    vs.http.forEach((h, i) => lines.push(`  http ${i}: ${h.match ? `${h.match} match(es)` : 'all requests'}${h.fault ? `; fault ${JSON.stringify(h.fault)}` : ''} → ${h.route.join(', ')}`));
  }
  for (const rl of view.rateLimits) lines.push('', `BackendTrafficPolicy ${rl.policy} → ${rl.target}: local rate limit ${rl.limit}`);
  return lines.join('\n');
}
