/** Per-caller bounds of `warren ca` (README "warren ca"): a token bucket for the rate and a cap on requests in flight. */
export interface CallerLimits {
  /** sustained requests per second per caller */
  ratePerSecond: number;
  /** requests a caller may make at once after being idle (an agent starting on a full node) */
  burst: number;
  /** requests of one caller in flight at once */
  concurrent: number;
}

/** 110 pods per node (the kubelet's default maximum) fit in one burst; a steady renewal load is far below the rate. */
export const DEFAULT_CALLER_LIMITS: CallerLimits = { ratePerSecond: 20, burst: 200, concurrent: 16 };

export type Admission = { admitted: true; release(): void } | { admitted: false; reason: 'rate' | 'concurrency'; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
  inFlight: number;
}

/** Callers remembered at most; idle full buckets are forgotten first (they equal a new one). */
const MAX_CALLERS = 10_000;

/**
 * Admission per caller (the client's IP, known before anything else about
 * the request): refused requests cost no API call. Pure apart from the
 * clock, which tests pass in.
 */
export class CallerLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: CallerLimits = DEFAULT_CALLER_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  admit(caller: string): Admission {
    const t = this.now();
    let b = this.buckets.get(caller);
    if (b === undefined) {
      if (this.buckets.size >= MAX_CALLERS) this.forgetIdle(t);
      b = { tokens: this.limits.burst, at: t, inFlight: 0 };
      this.buckets.set(caller, b);
    }
    b.tokens = Math.min(this.limits.burst, b.tokens + ((t - b.at) / 1000) * this.limits.ratePerSecond);
    b.at = t;
    if (b.inFlight >= this.limits.concurrent) return { admitted: false, reason: 'concurrency', retryAfterSeconds: 1 };
    if (b.tokens < 1) return { admitted: false, reason: 'rate', retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.limits.ratePerSecond)) };
    b.tokens -= 1;
    b.inFlight += 1;
    const bucket = b;
    let released = false;
    return {
      admitted: true,
      release: () => {
        if (released) return;
        released = true;
        bucket.inFlight -= 1;
      },
    };
  }

  private forgetIdle(t: number): void {
    for (const [caller, b] of this.buckets) {
      if (b.inFlight === 0 && b.tokens + ((t - b.at) / 1000) * this.limits.ratePerSecond >= this.limits.burst) this.buckets.delete(caller);
    }
  }
}
