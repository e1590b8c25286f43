import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { rootTest } from '../helpers/root.js';
import { warren } from '../helpers/warren-cli.js';

const id = (sa: string): string => `spiffe://cluster\\.local/ns/demo/sa/${sa}`;

rootTest('warren demo on a fresh machine: every step shows its evidence, exit 0, and nothing is left behind', async (t) => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-demo-`);
  try {
    const started = Date.now();
    const run = await warren('demo', '--state-dir', stateDir);
    const out = run.stdout;
    t.diagnostic(`warren demo took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(run.exitCode, 0, `${out}\n${run.stderr}`);

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
