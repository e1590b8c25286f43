import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROXY_NODE_OPTIONS, withProxyNodeOptions } from '../../../src/config/proxy-node-options.js';
import { agentCommand } from '../../../src/sim/agent-supervisor.js';
import { planTopology } from '../../../src/sim/topology/plan.js';

test("the simulator's agents run with the proxies' Node flags, as deploy/daemonset.yaml's, keeping the NODE_OPTIONS they inherit", () => {
  const node = planTopology('/run/warren-sim', ['node-1']).nodes[0]!;
  const saved = process.env.NODE_OPTIONS;
  try {
    delete process.env.NODE_OPTIONS;
    assert.deepEqual(agentCommand(node, '/k', 'https://10.255.0.1:15012').env, { NODE_OPTIONS: PROXY_NODE_OPTIONS });
    // the enrollment bench starts the simulator with --expose-gc to read the agents' memory after a GC
    process.env.NODE_OPTIONS = '--expose-gc';
    assert.deepEqual(agentCommand(node, '/k', 'https://10.255.0.1:15012').env, { NODE_OPTIONS: `--expose-gc ${PROXY_NODE_OPTIONS}` });
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
  assert.equal(withProxyNodeOptions(''), PROXY_NODE_OPTIONS);
});
