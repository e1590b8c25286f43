import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface ReliabilityRun {
  /** node:test's exit code: 0 when every scenario held */
  exitCode: number;
  dataplane: string;
  /** one object per scenario (test/helpers/reliability.ts recordFigures) */
  figures: Array<{ scenario: string } & Record<string, unknown>>;
}

/**
 * The reliability tier (test/reliability/) at the issue's full lengths: RELIABILITY_FULL=1
 * (10 000 hostile cases per boundary, a 30 s partition, 1 000 pods churned at 100/min), the
 * scenarios' figures collected from RELIABILITY_FIGURES. A scenario that fails still leaves
 * its figures: they are what the README's table reports.
 */
export async function benchReliability(): Promise<ReliabilityRun> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-bench-rely-'));
  const figuresFile = join(dir, 'figures.jsonl');
  const tests = new URL('../test/reliability/', import.meta.url).pathname;
  const files = readdirSync(tests).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(tests, f));
  const dataplane = process.env.RELIABILITY_DATAPLANE ?? 'native';
  try {
    const run = await execa(process.execPath, ['--test', '--test-concurrency=1', ...files], {
      reject: false,
      stdio: 'inherit',
      env: { RELIABILITY_FULL: '1', RELIABILITY_FIGURES: figuresFile, RELIABILITY_DATAPLANE: dataplane },
      // bounded: the full churn alone is 10 minutes
      timeout: 60 * 60_000,
    });
    let text = '';
    try {
      text = readFileSync(figuresFile, 'utf8');
    } catch {
      // no scenario got as far as its figures
    }
    const figures = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { scenario: string } & Record<string, unknown>);
    return { exitCode: run.exitCode ?? 1, dataplane, figures };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
