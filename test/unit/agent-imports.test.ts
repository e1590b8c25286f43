import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).href;
const NODE_COMMAND = new URL('../../src/cli/node.js', import.meta.url).href;
const WAYPOINT_COMMAND = new URL('../../src/cli/waypoint-proxy.js', import.meta.url).href;
const WAYPOINT_PROXY = new URL('../../src/waypoint/waypoint-proxy.js', import.meta.url).href;
const SPAN_EXPORT = new URL('../../src/waypoint/span-export.js', import.meta.url).href;

/** Every module the process resolved whose URL contains `needle`, with the module that asked for it. */
function resolvedWhileLoading(urls: string[], needle: string): string[] {
  const script = [
    "import { registerHooks } from 'node:module';",
    'const hits = [];',
    `registerHooks({ resolve(s, c, next) { const r = next(s, c); if (r.url.includes(${JSON.stringify(needle)})) hits.push(c.parentURL + ' -> ' + s); return r; } });`,
    ...urls.map((u) => `await import(${JSON.stringify(u)});`),
    "process.on('exit', () => process.stderr.write('HITS ' + JSON.stringify(hits) + '\\n'));",
  ].join('\n');
  // `version`: main.js runs the command it is given; this one prints and touches nothing.
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', 'version'], { encoding: 'utf8', timeout: 60_000 });
  const line = run.stderr.split('\n').find((l) => l.startsWith('HITS '));
  assert.ok(line, `the probe ran: ${run.stderr}`);
  return JSON.parse(line.slice(5)) as string[];
}

// client-node costs >= 75 MiB RSS in any process that loads part of it: the agent has its own client (docs/architecture.md §4).
test('warren node (the CLI entry and the node command with the whole agent graph) loads no @kubernetes/client-node module', () => {
  assert.deepEqual(resolvedWhileLoading([MAIN, NODE_COMMAND], '/@kubernetes/client-node/'), []);
});

// The waypoint pod runs one process per waypoint; the same ≥ 75 MiB would be most of its RSS (docs/architecture.md §4).
test('warren waypoint-proxy (the command, the whole waypoint process graph and its OTLP exporter) loads no @kubernetes/client-node module', () => {
  assert.deepEqual(resolvedWhileLoading([MAIN, WAYPOINT_COMMAND, WAYPOINT_PROXY, SPAN_EXPORT], '/@kubernetes/client-node/'), []);
});
