/**
 * Runs at most `limit` tasks at once; the others wait in arrival order.
 * Enrollment uses it so that labeling a namespace of 110 pods keeps the
 * cores busy without 110 rule programs and listener setups competing at once.
 */
export function concurrencyLimit(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    // A finishing task hands its slot straight to the next waiter, so `running` only counts free slots taken.
    if (running < limit) running++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next === undefined) running--;
      else next();
    }
  };
}
