import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientPort } from '../../../src/tunnel/waypoint-handoff.js';

test("the client's port from Forwarded is believed only when its IP is the tunnel peer's", () => {
  assert.equal(clientPort('for="10.244.1.2:51234"', '10.244.1.2', 40000), 51234);
  assert.equal(clientPort(['for="[fd00:10:244:1::2]:51234"'], 'fd00:10:244:1::2', 40000), 51234);
  assert.equal(clientPort('for="10.244.9.9:51234"', '10.244.1.2', 40000), 40000, 'another IP: the tunnel port stands in');
  assert.equal(clientPort('for=10.244.1.2', '10.244.1.2', 40000), 40000, 'no port');
  assert.equal(clientPort('for="10.244.1.2:0"', '10.244.1.2', 40000), 40000);
  assert.equal(clientPort('for="10.244.1.2:70000"', '10.244.1.2', 40000), 40000);
  assert.equal(clientPort(undefined, '10.244.1.2', 40000), 40000);
  assert.equal(clientPort('garbage', '10.244.1.2', 40000), 40000);
});
