import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentLoop } from '../../src/tunnel/agent-loop.js';

const pod = { podIps: ['10.1.0.7', 'fd00::7'] };

test('the agent ports at loopback, unspecified or one of the pod IPs loop into the agent', () => {
  for (const ip of ['127.0.0.1', '127.3.2.1', '::1', '0.0.0.0', '::', '10.1.0.7', 'fd00:0::07', '::ffff:127.0.0.1', '::ffff:10.1.0.7']) {
    for (const port of [15001, 15006, 15008]) assert.match(agentLoop({ ip, port }, pod) ?? '', /agent's port/, `${ip}:${port}`);
  }
});

test('other ports of the pod, and the agent ports of other pods, are ordinary destinations', () => {
  for (const dst of [
    { ip: '127.0.0.1', port: 8080 },
    { ip: '10.1.0.7', port: 15000 },
    { ip: '10.1.0.7', port: 15021 },
    { ip: '10.1.0.7', port: 15053 },
    { ip: '10.1.0.8', port: 15001 },
    { ip: 'fd00::8', port: 15008 },
  ]) {
    assert.equal(agentLoop(dst, pod), undefined, `${dst.ip}:${dst.port}`);
  }
});

test('an original destination equal to the listener it arrived on is the listener itself, whatever the address', () => {
  assert.match(agentLoop({ ip: '192.0.2.1', port: 15001 }, { ...pod, listener: { ip: '192.0.2.1', port: 15001 } }) ?? '', /own listener/);
  assert.match(agentLoop({ ip: '::ffff:192.0.2.1', port: 15001 }, { ...pod, listener: { ip: '192.0.2.1', port: 15001 } }) ?? '', /own listener/);
  assert.equal(agentLoop({ ip: '192.0.2.1', port: 80 }, { ...pod, listener: { ip: '127.0.0.1', port: 15001 } }), undefined);
});
