import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ENV, loadNodeAgentConfig, SETTINGS, settingDefault, settingFlag, type Setting } from '../../src/agent/config.js';
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

/** The README's row for a flag: its cells (flag, environment, default, what). */
function readmeRow(flagName: string): string[] | undefined {
  const line = README.split('\n').find((l) => l.startsWith(`| \`${flagName}\` |`));
  return line?.split('|').slice(1, -1).map((c) => c.trim());
}

test("the README's warren node table agrees with the settings: environment variable and default of every flag", () => {
  for (const key of Object.keys(SETTINGS) as Array<keyof typeof SETTINGS>) {
    const row = readmeRow(settingFlag(key));
    assert.ok(row !== undefined, `${settingFlag(key)} has no row in README.md`);
    const s: Setting = SETTINGS[key];
    assert.equal(row[1], s.env === undefined ? '' : `\`${s.env}\``, `${settingFlag(key)}: environment variable`);
    const shown = settingDefault(key);
    if (s.shown === undefined) assert.equal(row[2], shown === undefined ? '' : `\`${shown}\``, `${settingFlag(key)}: default`);
  }
});

test('every configuration key of warren node is a setting with a flag (and nothing else is)', () => {
  // dataplaneThreads has no default (one per core), so it is given to appear among the keys.
  const loaded = Object.keys(loadNodeAgentConfig({ nodeName: 'n', kubeconfig: '/k', cniPluginBinary: '/p', dataplaneThreads: '1' }, {}));
  assert.deepEqual(loaded.sort(), Object.keys(SETTINGS).sort());
});
