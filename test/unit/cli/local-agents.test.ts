import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localAgentsPath, readLocalAgents, writeLocalAgents } from '../../../src/cli/local-agents.js';

test('agents.json: what the simulator writes the operator commands read; none, broken or malformed files are told apart', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-agents-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(readLocalAgents(dir), undefined, 'no simulated cluster in this state dir');
  writeLocalAgents(dir, [{ node: 'node-1', netns: 'wrn-node-1' }, { node: 'node-2', netns: 'wrn-node-2' }]);
  assert.deepEqual(readLocalAgents(dir), [{ node: 'node-1', netns: 'wrn-node-1' }, { node: 'node-2', netns: 'wrn-node-2' }]);
  writeFileSync(localAgentsPath(dir), '{"agents": [');
  assert.throws(() => readLocalAgents(dir), { code: 'ERR_SIM_STATE', message: /agents\.json is not valid JSON/ });
  writeFileSync(localAgentsPath(dir), JSON.stringify({ agents: [{ node: 'node-1', netns: '../../proc/1/ns/net' }] }));
  assert.throws(() => readLocalAgents(dir), { code: 'ERR_SIM_STATE', message: /agents\.json: agents\.0\.netns: a netns name/ });
});
