import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { renderStatus, timeLeft, type StatusRow } from '../../../src/cli/status.js';
import { startTestAdmin, type TestAdmin } from '../../helpers/admin-server.js';
import { warren } from '../../helpers/warren-cli.js';

let admin: TestAdmin;
before(async () => {
  admin = await startTestAdmin();
});
after(() => admin.close());

test('warren policies explain: the decision, the policy and rule and what matched; exit 0 even for a deny', async () => {
  const r = await warren('policies', 'explain', '--from', 'demo/client-b', '--to', 'demo/web:8080', '--admin-address', admin.adminAddress);
  assert.equal(r.exitCode, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], 'DENY  demo/client-b (sa client-b, mTLS) → demo/web :8080 (node-2)');
  assert.equal(lines[1], '  by AuthorizationPolicy demo/deny-b rule 0: from[0].source.principals ["cluster.local/ns/demo/sa/client-b"] matched cluster.local/ns/demo/sa/client-b');
  assert.match(lines[2]!, /^ {2}PeerAuthentication PERMISSIVE \(default\); answered by 127\.0\.0\.1:\d+'s agent$/);
  assert.match(r.stdout, /\n {2}DENY {3}demo\/deny-b\n {9}rule 0: matched\n/);
  const json = await warren('policies', 'explain', '--from', 'demo/web', '--to', 'demo/client-b:9000', '--admin-address', admin.adminAddress, '-o', 'json');
  assert.equal(json.exitCode, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout).basis, 'no-allow-policy');
  // L7 asked on a path without a waypoint: the L4 answer stands, and it says HTTP rules are not enforced
  const l7 = await warren('policies', 'explain', '--from', 'demo/client-b', '--to', 'demo/web:8080', '--method', 'POST', '--path', '/x', '--admin-address', admin.adminAddress);
  assert.equal(l7.exitCode, 0, l7.stderr);
  assert.equal(l7.stdout.split('\n')[0], lines[0]);
  assert.match(l7.stdout, /\nL7 POST \/x: no waypoint on this path, so HTTP rules are not enforced/);
});

test('warren policies explain: errors name what is wrong and exit non-zero; the list view still works', async () => {
  const missing = await warren('policies', 'explain', '--from', 'demo/client-b', '--admin-address', admin.adminAddress);
  assert.equal(missing.exitCode, 2);
  assert.match(missing.stderr, /--to is required/);
  const unknown = await warren('policies', 'explain', '--from', 'demo/client-b', '--to', 'demo/nope:80', '--admin-address', admin.adminAddress);
  assert.equal(unknown.exitCode, 1);
  assert.match(unknown.stderr, /answered 404 for \/explain: to: no pod demo\/nope/);
  const bad = await warren('policies', 'explain', '--from', 'demo/client-b', '--to', 'demo/web', '--admin-address', admin.adminAddress);
  assert.equal(bad.exitCode, 1);
  assert.match(bad.stderr, /answered 400 for \/explain: to: "demo\/web" is not NS\/POD:PORT/);
  const method = await warren('policies', 'explain', '--from', 'demo/client-b', '--to', 'demo/web:8080', '--method', 'GE T', '--admin-address', admin.adminAddress);
  assert.equal(method.exitCode, 2);
  assert.match(method.stderr, /--method: "GE T" is not an HTTP method/);
  const path = await warren('policies', 'explain', '--from', 'demo/client-b', '--to', 'demo/web:8080', '--path', 'admin', '--admin-address', admin.adminAddress);
  assert.equal(path.exitCode, 2);
  assert.match(path.stderr, /--path: "admin" must start with '\/'/);
  const list = await warren('policies', '--admin-address', admin.adminAddress);
  assert.equal(list.exitCode, 0, list.stderr);
  assert.match(list.stdout, /^AuthorizationPolicy\s+demo\/deny-b\s+DENY\s/m);
});

test('warren status: one row per agent with readiness from /healthz/ready; exit 1 when an agent is not ready', async () => {
  const r = await warren('status', '--admin-address', admin.adminAddress, '--readiness-address', admin.readinessAddress);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(
    r.stdout.split('\n').map((l) => l.split(/\s{2,}/)),
    [
      ['NODE', 'READY', 'BACKEND', 'ENROLLED', 'CERTS', 'NEXT-EXPIRY', 'POLICIES', 'CONNECTIONS'],
      ['node-2', 'yes', 'nft', '0', '0', '-', '1/0', '0'],
    ],
  );
  const json = await warren('status', '--admin-address', admin.adminAddress, '--readiness-address', admin.readinessAddress, '-o', 'json');
  assert.deepEqual(JSON.parse(json.stdout)[0].status.policies, { authorization: 1, peerAuthentication: 0 });
  const down = await warren('status', '--admin-address', admin.adminAddress, '--readiness-address', '127.0.0.1:9');
  assert.equal(down.exitCode, 1);
  assert.match(down.stdout, /^node-2\s+no\s+nft/m);
  assert.match(down.stdout, /node-2: not ready: cannot reach the agent at 127\.0\.0\.1:9/);
});

test('warren status table fits 100 columns; expiry is shown as time left', () => {
  const now = Date.parse('2026-11-23T12:00:00Z');
  assert.equal(timeLeft('2026-11-24T11:59:30Z', now), '23h 59m');
  assert.equal(timeLeft('2026-11-30T14:00:00Z', now), '7d 2h');
  assert.equal(timeLeft('2026-11-23T11:00:00Z', now), 'expired');
  assert.equal(timeLeft(null, now), '-');
  const status = { node: 'worker-node-12', backend: 'iptables', enrolled: 1234, certificates: { count: 120, valid: 119, soonestExpiry: '2026-11-24T11:00:00Z' }, policies: { authorization: 1000, peerAuthentication: 100 }, connections: 123456 };
  const rows: StatusRow[] = [{ node: 'worker-node-12', ready: true, status }, { node: 'worker-node-13', ready: false, notReady: '503: initial sync not done', error: 'cannot reach' }];
  const text = renderStatus(rows, now);
  for (const line of text.split('\n').slice(0, 3)) assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
  assert.match(text, /119\/120\s+23h 0m\s+1000\/100\s+123456/);
  assert.match(text, /worker-node-13: not ready: 503: initial sync not done\nworker-node-13: cannot reach/);
});
