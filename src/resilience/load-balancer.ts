import { createHash } from 'node:crypto';
import type { Endpoint } from '../k8s/cluster-index.js';
import type { LoadBalancer } from './destination-rule.js';
import { endpointKey } from './outlier-detection.js';

/**
 * Picks the endpoint for one try (docs/architecture.md §15): round robin
 * (Istio's default), random, least request (Envoy's power of two choices
 * over active requests), or a consistent hash of a header (rendezvous
 * hashing, so one endpoint leaving moves only the keys it had).
 */
export interface PickContext {
  /** round-robin position for this cluster, advanced by the caller */
  cursor: number;
  random(): number;
  active(e: Endpoint): number;
  header(name: string): string | undefined;
}

function score(key: string, e: Endpoint): bigint {
  return createHash('sha1').update(key).update('\0').update(endpointKey(e)).digest().readBigUInt64BE(0);
}

export function pickEndpoint(endpoints: readonly Endpoint[], lb: LoadBalancer | undefined, ctx: PickContext): Endpoint | undefined {
  const n = endpoints.length;
  if (n === 0) return undefined;
  if (n === 1) return endpoints[0];
  if (lb !== undefined && 'consistentHashHeader' in lb) {
    const key = ctx.header(lb.consistentHashHeader);
    if (key !== undefined) {
      let best = endpoints[0]!;
      let bestScore = score(key, best);
      for (const e of endpoints.slice(1)) {
        const s = score(key, e);
        if (s > bestScore) [best, bestScore] = [e, s];
      }
      return best;
    }
  }
  const simple = lb !== undefined && 'simple' in lb ? lb.simple : 'ROUND_ROBIN';
  if (simple === 'RANDOM') return endpoints[Math.floor(ctx.random() * n) % n];
  if (simple === 'LEAST_REQUEST') {
    const a = endpoints[Math.floor(ctx.random() * n) % n]!;
    let b = endpoints[Math.floor(ctx.random() * (n - 1)) % (n - 1)]!;
    if (b === a) b = endpoints[n - 1]!;
    return ctx.active(b) < ctx.active(a) ? b : a;
  }
  return endpoints[ctx.cursor % n];
}
