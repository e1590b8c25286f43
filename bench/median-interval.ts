/**
 * A distribution-free confidence interval for a median: the k-th smallest and
 * k-th largest of n values, k as large as the wanted coverage allows. Each
 * value lies below the true median with probability ½, so the number below it
 * is Binomial(n, ½), and [x(k), x(n−k+1)] misses the median only when fewer
 * than k values fall on one side: coverage 1 − 2·P(Binomial(n, ½) ≤ k − 1).
 *
 * Why: the benchmark's same-round ratios swing ±20 % on the shared 2-core
 * machine, so a median of 10 rounds a few percent either side of 1.0 is not
 * a verdict; the interval says whether the rounds could tell at all. No
 * resampling: the same values always give the same interval.
 */
export interface MedianInterval {
  low: number;
  high: number;
  /** the interval's actual coverage (≥ the asked level; the binomial steps) */
  coverage: number;
}

/** `undefined` when too few values (fewer than 6 at 95 %) bound the median at that level. */
export function medianInterval(xs: readonly number[], level = 0.95): MedianInterval | undefined {
  if (!(level > 0 && level < 1)) throw new RangeError(`level: a probability between 0 and 1 exclusive, got ${level}`);
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = s.length;
  let below = 0; // P(Binomial(n, ½) ≤ k − 1), built up one k at a time
  let term = 2 ** -n; // P(Binomial(n, ½) = k − 1)
  let best: MedianInterval | undefined;
  for (let k = 1; 2 * k <= n; k++) {
    below += term;
    term = (term * (n - (k - 1))) / k;
    const coverage = 1 - 2 * below;
    if (coverage < level) break;
    best = { low: s[k - 1]!, high: s[n - k]!, coverage };
  }
  return best;
}
