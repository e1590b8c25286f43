import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentCommand } from '../../../src/sim/agent-supervisor.js';
import { meshRoleOf } from '../../../src/sim/mesh-processes.js';
import { planTopology } from '../../../src/sim/topology/plan.js';

const KC = '/run/warren-sim/kubeconfig.cluster';
/** What /proc/<pid>/cmdline shows once `ip netns exec` has exec'd the command. */
const cmdline = (args: string[]): string[] => args.slice(3);

test("the simulator's agent and CA command lines are recognised, per cluster, and the one-shot --uninstall is not an agent", () => {
  const node = planTopology('/run/warren-sim', ['node-1']).nodes[0]!;
  const agent = cmdline(agentCommand(node, KC, 'https://10.255.0.1:15012').args);
  assert.deepEqual(meshRoleOf(agent, KC), { role: 'node', node: 'node-1' });
  assert.equal(meshRoleOf(agent, '/tmp/other-cluster/kubeconfig.cluster'), undefined, "another cluster's agent");
  assert.equal(meshRoleOf(cmdline(agentCommand(node, KC, 'https://10.255.0.1:15012', ['--uninstall']).args), KC), undefined);
  assert.deepEqual(meshRoleOf(['/usr/bin/node', '/x/dist/src/cli/main.js', 'ca', '--kubeconfig', KC, '--namespace', 'warren-system'], KC), { role: 'ca' });
  assert.equal(meshRoleOf(['/usr/bin/node', '/x/dist/src/cli/main.js', 'sim', 'dns', '--kubeconfig', KC], KC), undefined);
  assert.equal(meshRoleOf([''], KC), undefined, 'an unreadable cmdline');
});
