import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

// The README's test command must not look green when the kernel tiers could not run.
const script = fileURLToPath(new URL('../../../scripts/run-tests.mjs', import.meta.url));
// Run as an unprivileged user (nobody) when the suite itself runs as root.
const asNonRoot = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

function runTests(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const res = spawnSync(process.execPath, [script, ...args], {
    ...asNonRoot,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeout: 120_000,
  });
  return { status: res.status, stderr: res.stderr, stdout: res.stdout };
}

test('without root, a run that includes a root tier fails and says loudly that it was skipped', () => {
  const res = runTests(['netns']);
  // Every netns test registered as skipped: the tier itself is "green"...
  assert.match(res.stdout, /^(#|ℹ) fail 0$/m);
  assert.match(res.stdout, /^(#|ℹ) pass 0$/m);
  // ...and the runner still refuses to call that a pass.
  assert.equal(res.status, 3, res.stderr);
  assert.match(res.stderr, /NOT ROOT: the netns tier\(s\) were SKIPPED/);
  assert.match(res.stderr, /--unit-only/);
});

test('--unit-only is the unit tier alone: naming another tier with it is a usage error', () => {
  const res = runTests(['--unit-only', 'e2e']);
  assert.equal(res.status, 2);
  assert.match(res.stderr, /--unit-only runs the unit tier alone/);
});
