/**
 * When to renew a certificate received at `receivedAt`: at half of the time
 * it had left then, ±5 % of it so agents that started together do not
 * stampede the CA. (The CA back-dates notBefore for clock skew, so the
 * receipt time, not notBefore, is where the lifetime starts for us.)
 */
export function renewalTime(receivedAt: number, notAfter: number, random: () => number = Math.random): number {
  const life = Math.max(0, notAfter - receivedAt);
  return receivedAt + life * (0.45 + 0.1 * random());
}

/**
 * Delay before retry `attempt` (0-based) after a failed fetch: exponential
 * from 500 ms, capped at 30 s, with ±20 % jitter, and while a valid
 * certificate remains never more than a quarter of its remaining life, so
 * several tries happen before it runs out.
 */
export function retryDelay(attempt: number, now: number, notAfter: number | undefined, random: () => number = Math.random): number {
  let delay = Math.min(500 * 2 ** Math.min(attempt, 16), 30_000);
  if (notAfter !== undefined && notAfter > now) delay = Math.min(delay, Math.max(250, (notAfter - now) / 4));
  return Math.round(delay * (0.8 + 0.4 * random()));
}
