import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { rootTest } from '../helpers/root.js';
import { testDataplanes } from '../helpers/sim-cluster.js';
import { warren } from '../helpers/warren-cli.js';

const id = (sa: string): string => `spiffe://cluster\\.local/ns/demo/sa/${sa}`;

for (const dataplane of testDataplanes())
rootTest(`warren demo --dataplane ${dataplane} on a fresh machine: every step shows its evidence, exit 0, and nothing is left behind`, async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-demo-`);
  try {
    const started = Date.now();
    const run = await warren('demo', '--dataplane', dataplane, '--state-dir', stateDir);
    const out = run.stdout;
    t.diagnostic(`warren demo --dataplane ${dataplane} took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(run.exitCode, 0, `${out}\n${run.stderr}`);
    assert.match(out, new RegExp(`starting a simulated cluster with two nodes in ${stateDir}, agents on --dataplane ${dataplane}\n`));

    // Before enrollment the request crosses the node-to-node link in clear; after, only TLS to the HBONE port.
    assert.match(out, /capture: "GET \/demo-[0-9a-f]{8}" seen in clear on the node-to-node link \(10\.244\.1\.\d+:\d+ → 10\.244\.2\.\d+:8080\)/);
    assert.match(out, /capture: 0 plaintext markers; [1-9]\d* TLS records on 10\.244\.1\.\d+ → 10\.244\.2\.\d+:15008 \(HBONE\)/);
    // Enrolled by the label, without restarts: each pod lists the same pids and restart count.
    assert.match(out, /3\/3 pods enrolled in [\d.]+ s/);
    const kept = out.split('\n').filter((l) => l.includes('same process, not restarted'));
    assert.equal(kept.length, 3, out);
    for (const line of kept) {
      const m = /pid ([\d,]+) → ([\d,]+), restarts (\d+) → (\d+)/.exec(line);
      assert.ok(m && m[1] === m[2] && m[3] === m[4], line);
    }
    // Both SPIFFE identities in each agent's access log line.
    for (const side of ['node-1, source', 'node-2, destination']) {
      assert.match(out, new RegExp(`access log \\(${side}\\): client \\(${id('client')}\\) → web \\(${id('web')}\\) mtls, .* ok`));
    }
    // The policy lets the client in and resets the second client, and the access log names it.
    assert.match(out, /client-b → web: failed: (ECONNRESET|socket hang up)/);
    assert.match(out, /client {3}→ web: HTTP 200 from web-/);
    assert.match(out, new RegExp(`access log \\(node-2, destination\\): client-b \\(${id('intruder')}\\) → web \\(${id('web')}\\) mtls, .* denied: .*demo/web-allow-client`));
    assert.match(out, /\$ warren policies explain --from demo\/client-b --to demo\/web-[a-z0-9-]+:8080/);
    assert.match(out, /^\s+DENY\b.*\n(.*\n)*?.*demo\/web-allow-client/m, 'explain names the policy that decides');
    assert.match(out, /istio_tcp_connections_opened_total\{reporter="destination",source_workload="client",destination_workload="web",connection_security_policy="mutual_tls"\} [2-9]/);
    assert.match(out, /warren_policy_denials_total [1-9]/);
    // The waypoint chapter: web's traffic goes through a real waypoint pod, split 80/20 by an HTTPRoute, and the waypoint refuses DELETE.
    assert.match(out, /waypoint demo\/waypoint is programmed: 10\.96\./);
    assert.match(out, /client → http:\/\/web\/: HTTP 200 from web-.* \(it saw the caller as (10\.244\.\d+\.\d+)\): the app is now called by the waypoint/);
    const waypointIp = /waypoint pod waypoint-[a-z0-9-]+ (10\.244\.\d+\.\d+)/.exec(out)?.[1];
    assert.equal(/it saw the caller as (10\.244\.\d+\.\d+)\): the app is now called by the waypoint/.exec(out)?.[1], waypointIp, 'web is called from the waypoint pod');
    const split = /100 requests to http:\/\/web\/: web-v1 \(Deployment web\) served (\d+), web-v2 served (\d+)/.exec(out);
    assert.ok(split, out);
    assert.equal(Number(split[1]) + Number(split[2]), 100, 'every canary request answered by v1 or v2');
    assert.ok(Number(split[1]) >= 65 && Number(split[1]) <= 95, `80/20: v1 served ${split[1]}`);
    assert.match(out, /client {3}GET {4}http:\/\/web\/orders\/1: HTTP 200 from web/);
    assert.match(out, /client {3}DELETE http:\/\/web\/orders\/1: HTTP 403 .*\(not from the app\)/);
    assert.match(out, /client-b GET {4}http:\/\/web\/orders\/1: HTTP 403 .*\(not from the app\)/);
    assert.match(out, /\$ warren policies explain --from demo\/client-[a-z0-9-]+ --to demo\/web-[a-z0-9-]+:8080 --method DELETE --path \/orders\/1/);
    assert.match(out, /^\s+L7 DELETE \/orders\/1:\n\s+DENY\s+at waypoint demo\/waypoint .*demo\/web-read-only/m, 'explain names the waypoint and the L7 policy');
    assert.match(out, /istio_requests_total\{reporter="waypoint",destination_service_name="web",response_code="403"\} [1-9]/);
    assert.match(out, /every step did what it said/);

    // It started the cluster, so it removed it.
    assert.match(out, /cleaning up: warren sim down/);
    assert.ok(!existsSync(stateDir), `${stateDir} is removed`);
    const left = (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('wrn-'));
    assert.deepEqual(left, []);
    const procs = await execa('pgrep', ['-f', `sim serve --state-dir ${stateDir}`], { reject: false });
    assert.equal(procs.stdout.trim(), '', 'no control plane process left');
  } finally {
    await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
  }
});
