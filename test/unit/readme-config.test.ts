import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ENV } from '../../src/agent/config.js';
import { CA_ENV } from '../../src/ca/config.js';
import { WAYPOINT_ENV } from '../../src/waypoint/config.js';

const README = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const flag = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The README's configuration reference is what users read: every setting must be in it. */
for (const [component, env] of [['warren node', ENV], ['warren ca', CA_ENV], ['warren waypoint-proxy', WAYPOINT_ENV]] as const) {
  test(`README documents every ${component} flag and environment variable`, () => {
    for (const [key, name] of Object.entries(env)) {
      assert.ok(README.includes(`\`${flag(key)}\``), `${component}: ${flag(key)} is not in README.md`);
      assert.ok(README.includes(`\`${name}\``), `${component}: $${name} is not in README.md`);
    }
  });
}
