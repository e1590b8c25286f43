/**
 * A token bucket (docs/architecture.md §15): `burst` tokens at most, refilled
 * continuously at `ratePerSecond`; a request takes one or is refused. Plain
 * data and a function of the clock, so tests drive time.
 */
export interface Bucket {
  tokens: number;
  lastMs: number;
}

export interface BucketLimits {
  ratePerSecond: number;
  burst: number;
}

export interface TakeResult {
  allowed: boolean;
  /** whole tokens left after this request */
  remaining: number;
  /** seconds until the next token (x-ratelimit-reset) */
  resetSeconds: number;
}

export function newBucket(limits: BucketLimits, nowMs: number): Bucket {
  return { tokens: limits.burst, lastMs: nowMs };
}

/** Refills for the time passed, then takes one token if there is one (mutates the bucket). */
export function takeToken(b: Bucket, limits: BucketLimits, nowMs: number): TakeResult {
  const elapsed = Math.max(0, nowMs - b.lastMs) / 1000;
  b.tokens = Math.min(limits.burst, b.tokens + elapsed * limits.ratePerSecond);
  b.lastMs = nowMs;
  const allowed = b.tokens >= 1;
  if (allowed) b.tokens -= 1;
  const missing = Math.max(0, 1 - b.tokens);
  return { allowed, remaining: Math.floor(b.tokens), resetSeconds: Math.ceil(missing / limits.ratePerSecond) };
}
