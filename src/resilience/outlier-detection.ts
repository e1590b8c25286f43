import type { Endpoint } from '../k8s/cluster-index.js';
import type { OutlierPolicy } from './destination-rule.js';

/**
 * Outlier ejection for one upstream cluster (docs/architecture.md §15), as
 * Envoy's consecutive-error detectors: an endpoint answering
 * `consecutive5xxErrors` 5xx in a row (or `consecutiveGatewayErrors`
 * 502/503/504 or connect failures) is ejected for baseEjectionTime × the
 * times it was ejected, unless that would eject more than
 * maxEjectionPercent of the endpoints (Envoy ejects one at least). A success
 * resets its count. Functions of plain data and the clock.
 */
export interface EndpointHealth {
  consecutive5xx: number;
  consecutiveGateway: number;
  ejections: number;
  ejectedUntilMs: number;
}

export type OutlierState = Map<string, EndpointHealth>;

export const endpointKey = (e: Endpoint): string => `${e.ip}:${e.port}`;

/** What a try ended with: an HTTP status, or no response (connect failure, reset, timeout). */
export type TryResult = { status: number } | { failure: 'connect' | 'reset' | 'timeout' };

/** A try that got no response, as the detector counts it. */
export function tryResult(e: { sent: boolean; timeout: boolean }): TryResult {
  return { failure: e.timeout ? 'timeout' : e.sent ? 'reset' : 'connect' };
}

function health(state: OutlierState, key: string): EndpointHealth {
  let h = state.get(key);
  if (h === undefined) {
    h = { consecutive5xx: 0, consecutiveGateway: 0, ejections: 0, ejectedUntilMs: 0 };
    state.set(key, h);
  }
  return h;
}

export function isEjected(state: OutlierState, e: Endpoint, nowMs: number): boolean {
  const h = state.get(endpointKey(e));
  return h !== undefined && h.ejectedUntilMs > nowMs;
}

/** Records a try's result; true when it ejected the endpoint. */
export function recordResult(state: OutlierState, policy: OutlierPolicy, endpoints: readonly Endpoint[], e: Endpoint, result: TryResult, nowMs: number): boolean {
  const h = health(state, endpointKey(e));
  const gateway = 'failure' in result || result.status === 502 || result.status === 503 || result.status === 504;
  const serverError = 'failure' in result || result.status >= 500;
  if (!serverError) {
    h.consecutive5xx = 0;
    h.consecutiveGateway = 0;
    return false;
  }
  h.consecutive5xx += 1;
  h.consecutiveGateway = gateway ? h.consecutiveGateway + 1 : 0;
  if (h.ejectedUntilMs > nowMs) return false;
  const tripped = (policy.consecutive5xxErrors > 0 && h.consecutive5xx >= policy.consecutive5xxErrors) || (policy.consecutiveGatewayErrors > 0 && h.consecutiveGateway >= policy.consecutiveGatewayErrors);
  if (!tripped) return false;
  const ejectedNow = endpoints.filter((x) => isEjected(state, x, nowMs)).length;
  const maxEjected = Math.max(1, Math.floor((endpoints.length * policy.maxEjectionPercent) / 100));
  if (ejectedNow >= maxEjected || policy.maxEjectionPercent === 0) return false;
  h.ejections += 1;
  h.ejectedUntilMs = nowMs + policy.baseEjectionTimeMs * h.ejections;
  h.consecutive5xx = 0;
  h.consecutiveGateway = 0;
  return true;
}

/**
 * The endpoints to balance over: the ones not ejected, or all of them when
 * fewer than minHealthPercent would be left (Envoy's panic threshold: then
 * outlier detection is set aside) or none at all.
 */
export function healthyEndpoints(state: OutlierState, policy: OutlierPolicy, endpoints: readonly Endpoint[], nowMs: number): readonly Endpoint[] {
  if (state.size === 0) return endpoints;
  const healthy = endpoints.filter((e) => !isEjected(state, e, nowMs));
  if (healthy.length === 0 || (healthy.length * 100) / endpoints.length < policy.minHealthPercent) return endpoints;
  return healthy.length === endpoints.length ? endpoints : healthy;
}

/**
 * The interval sweep: an endpoint whose ejection ended is back; one that has
 * been healthy since decays its ejection count (Envoy's multiplier decrease).
 */
export function sweep(state: OutlierState, live: ReadonlySet<string>, nowMs: number): void {
  for (const [key, h] of state) {
    if (!live.has(key)) state.delete(key);
    else if (h.ejectedUntilMs <= nowMs && h.consecutive5xx === 0 && h.ejections > 0) h.ejections -= 1;
  }
}
