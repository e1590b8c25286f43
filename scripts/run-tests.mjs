#!/usr/bin/env node
// Runs the compiled node:test suites tier by tier (test/README.md).
// Usage: node scripts/run-tests.mjs [--unit-only] [unit|netns|e2e|reliability ...]   (default: all tiers)
// Files run one at a time: root tiers share kernel state (iptables lock,
// sysctls, the CNI plugins' host-local IPAM) and unit tests are fast anyway.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const TIERS = ['unit', 'netns', 'e2e', 'reliability'];
const ROOT_TIERS = ['netns', 'e2e', 'reliability'];
const root = new URL('..', import.meta.url).pathname;
const argv = process.argv.slice(2);
// Without root the netns and e2e tests only register as skipped, and a green summary
// would hide that nothing of the kernel was tested: such a run fails unless the
// caller asked for the unit tier alone.
const unitOnly = argv.includes('--unit-only');
const wanted = argv.filter((a) => a !== '--unit-only');
const unknown = wanted.filter((t) => !TIERS.includes(t));
if (unknown.length > 0) {
  console.error(`unknown test tier(s): ${unknown.join(', ')}; known: ${TIERS.join(', ')}`);
  process.exit(2);
}

function files(dir) {
  let out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

if (unitOnly && wanted.some((t) => t !== 'unit')) {
  console.error('--unit-only runs the unit tier alone; drop the other tier names');
  process.exit(2);
}
const tiers = unitOnly ? ['unit'] : wanted.length > 0 ? wanted : TIERS;
const list = tiers.flatMap((t) => files(join(root, 'dist', 'test', t)).map((f) => ({ tier: t, f })));
if (list.length === 0) {
  console.error('no compiled tests found under dist/test: run `npm run build` first');
  process.exit(2);
}
// One node --test run so the summary lines at the end cover every tier.
const args = ['--test', '--test-concurrency=1', ...list.map((x) => x.f)];
const res = spawnSync(process.execPath, args, { stdio: 'inherit' });
const skippedRootTiers = process.getuid?.() === 0 ? [] : tiers.filter((t) => ROOT_TIERS.includes(t));
if (skippedRootTiers.length > 0) {
  const bar = '!'.repeat(78);
  console.error(
    [
      bar,
      `!! NOT ROOT: the ${skippedRootTiers.join(' and ')} tier(s) were SKIPPED, nothing of the kernel`,
      '!! or the simulator was tested. Run as root for the whole suite, or pass',
      '!! --unit-only to run (and pass with) the unit tier alone.',
      bar,
    ].join('\n'),
  );
  process.exit(res.status === 0 ? 3 : (res.status ?? 1));
}
process.exit(res.status ?? 1);
