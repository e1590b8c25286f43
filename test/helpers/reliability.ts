import { appendFileSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { httpGetInNetns } from '../../src/net/netns-http.js';
import { sample } from './prometheus.js';

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

export const RULE_OPERATIONS = ['pod-apply', 'pod-remove-capture', 'pod-remove', 'node'] as const;
/** warren_rule_applies_total of the agents of `nodes` (their netns), summed, by operation: every netfilter/routing write they made. */
export async function ruleApplies(nodes: readonly string[]): Promise<Record<(typeof RULE_OPERATIONS)[number], number>> {
  const texts = await Promise.all(nodes.map(async (n) => (await httpGetInNetns({ netns: n, host: '127.0.0.1', port: 15020, path: '/metrics', timeoutMs: 5000 })).body.toString()));
  return Object.fromEntries(RULE_OPERATIONS.map((op) => [op, texts.reduce((sum, text) => sum + (sample(text, 'warren_rule_applies_total', { operation: op }) ?? 0), 0)])) as Record<(typeof RULE_OPERATIONS)[number], number>;
}

/**
 * A process's descriptors counted by kind (`socket`, `pipe`, `anon_inode:[eventpoll]`, a file's
 * path): a descriptor check that fails says what grew, not only by how much.
 */
export async function fdKinds(pid: number): Promise<Record<string, number>> {
  const kinds: Record<string, number> = {};
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    // closed between the listing and the read (the listing's own descriptor is one)
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
    if (target === undefined) continue;
    const kind = target.replace(/:\[\d+\]$/, '');
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(kinds).sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * What the agents' logs say went wrong since `since` (ms): warnings and errors, and access log
 * lines of connections that did not end ok, but those `except` matches, at most `max`, for an assertion's message, so a
 * failure in CI names its cause (the logs are removed with the test's state directory).
 */
export function troubleLines(logs: string, since: number, o: { except?: RegExp; max?: number } = {}): string {
  const max = o.max ?? 20;
  const bad = logs.split('\n').filter((l) => {
    const time = /"time":(\d+)/.exec(l);
    if (time === null || Number(time[1]) < since || o.except?.test(l)) return false;
    return /"level":[4-6]\d/.test(l) || (l.includes('"msg":"connection"') && !l.includes('"outcome":"ok"'));
  });
  return bad.length === 0 ? 'the agents logged nothing wrong' : `the agents' logs (${bad.length} lines of trouble):\n${bad.slice(0, max).map((l) => l.slice(0, 500)).join('\n')}`;
}
