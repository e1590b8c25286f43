#!/usr/bin/env node
// Runs the compiled node:test suites tier by tier (test/README.md).
// Usage: node scripts/run-tests.mjs [unit|netns|e2e ...]   (default: all tiers)
// Files run one at a time: root tiers share kernel state (iptables lock,
// sysctls, the CNI plugins' host-local IPAM) and unit tests are fast anyway.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const TIERS = ['unit', 'netns', 'e2e'];
const root = new URL('..', import.meta.url).pathname;
const wanted = process.argv.slice(2);
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

const tiers = wanted.length > 0 ? wanted : TIERS;
const list = tiers.flatMap((t) => files(join(root, 'dist', 'test', t)).map((f) => ({ tier: t, f })));
if (list.length === 0) {
  console.error('no compiled tests found under dist/test: run `npm run build` first');
  process.exit(2);
}
// One node --test run so the summary lines at the end cover every tier.
const args = ['--test', '--test-concurrency=1', ...list.map((x) => x.f)];
const res = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(res.status ?? 1);
