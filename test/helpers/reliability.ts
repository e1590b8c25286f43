import { appendFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

/**
 * The reliability tier's knobs: the CI run is short (`node scripts/run-tests.mjs
 * reliability`), `npm run bench -- reliability` sets RELIABILITY_FULL=1 for the
 * issue's full lengths and RELIABILITY_FIGURES to a file it collects figures from.
 */
export const fullLength = (): boolean => process.env.RELIABILITY_FULL === '1';

/** `short` in CI, `full` under the benchmark; an explicit env value wins (e.g. HOSTILE_CASES=500). */
export function scaled(envName: string, short: number, full: number): number {
  const raw = process.env[envName];
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${envName}: a positive integer, got ${JSON.stringify(raw)}`);
    return n;
  }
  return fullLength() ? full : short;
}

/** One scenario's figures: printed as a test diagnostic, and collected by the benchmark when it runs the tier. */
export function recordFigures(t: TestContext, scenario: string, figures: Record<string, unknown>): void {
  t.diagnostic(`${scenario}: ${JSON.stringify(figures)}`);
  const file = process.env.RELIABILITY_FIGURES;
  if (file) appendFileSync(file, JSON.stringify({ scenario, ...figures }) + '\n');
}
