import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';

export const exec = promisify(execFile);

/** The machine's kubectl; without one the test is skipped, except in CI where it must be installed. */
export async function kubectlOrSkip(t: TestContext): Promise<string | undefined> {
  const path = await exec('sh', ['-c', 'command -v kubectl']).then((r) => r.stdout.trim() || undefined, () => undefined);
  if (path !== undefined) return path;
  if (process.env.CI) assert.fail('kubectl is not installed (scripts/install-deps.sh installs it)');
  t.skip('kubectl not installed');
  return undefined;
}
