import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { eventually } from '../helpers/apiserver.js';
import { rootTest } from '../helpers/root.js';
import { simClusterWith } from '../helpers/sim-cluster.js';
import { warren } from '../helpers/warren-cli.js';

// The machine's kubectl against a running simulator, as a user types it
// (issue 22): logs and exec of real pods, the Deployment commands.
const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: {name: kc}
---
apiVersion: v1
kind: Pod
metadata: {name: ticker, namespace: kc}
spec:
  nodeName: node-2
  containers:
  - name: tick
    image: busybox
    command: [sh, -c, 'echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done']
  - name: idle
    image: busybox
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

rootTest('sim + kubectl: logs -f, exec in the pod netns (exit status, stdin), rollout status|restart, scale, wait', async () => {
  const stateDir = await mkdtemp(`${tmpdir()}/warren-simk-`);
  const kubeconfig = `${stateDir}/kubeconfig`;
  const run = (args: string[], input?: string, timeoutMs = 60_000): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill(), timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(input);
    });
  const ok = async (...args: string[]): Promise<string> => {
    const r = await run(args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  try {
    await simClusterWith(stateDir, 16548, MANIFEST);
    assert.match(await ok('-n', 'kc', 'wait', '--for=condition=Ready', 'pod/ticker', '--timeout=60s'), /pod\/ticker condition met/);

    // logs: the container's own output, -f streams what it writes next.
    await eventually(async () => /tick 3/.test((await run(['-n', 'kc', 'logs', 'ticker', '-c', 'tick'])).stdout), 'three ticks', 15_000);
    const logs = await ok('-n', 'kc', 'logs', 'ticker', '-c', 'tick');
    assert.match(logs, /^started\ntick 1\ntick 2\n/);
    assert.equal((await ok('-n', 'kc', 'logs', 'ticker', '-c', 'tick', '--tail=1')).split('\n').length, 2);
    const follow = spawn('kubectl', ['--kubeconfig', kubeconfig, '-n', 'kc', 'logs', '-f', 'ticker', '-c', 'tick', '--tail=1']);
    let streamed = '';
    follow.stdout.on('data', (d: Buffer) => (streamed += d.toString()));
    try {
      const last = Number(/tick (\d+)\n$/.exec(logs)![1]);
      await eventually(() => new RegExp(`tick ${last + 5}\\n`).test(streamed), `-f to stream tick ${last + 5}`, 15_000);
    } finally {
      follow.kill();
    }

    // exec: in the pod's netns (its eth0 has the pod IP), exit status and stdin passed through.
    const podIp = (await ok('-n', 'kc', 'get', 'pod', 'ticker', '-o', 'jsonpath={.status.podIP}')).trim();
    assert.equal(await ok('-n', 'kc', 'exec', 'ticker', '-c', 'tick', '--', 'sh', '-c', 'echo $((6*7))'), '42\n');
    assert.match(await ok('-n', 'kc', 'exec', 'ticker', '-c', 'idle', '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0'), new RegExp(`inet ${podIp.replace(/\./g, '\\.')}/`));
    assert.equal((await run(['-n', 'kc', 'exec', 'ticker', '-c', 'tick', '--', 'sh', '-c', 'exit 7'])).code, 7);
    assert.equal((await run(['-n', 'kc', 'exec', '-i', 'ticker', '-c', 'tick', '--', 'wc', '-l'], 'a\nb\nc\n')).stdout.trim(), '3');

    // The Deployment commands, imperative from the start.
    await ok('-n', 'kc', 'create', 'deployment', 'web', '--image=http-echo', '--port=8080');
    assert.match(await ok('-n', 'kc', 'rollout', 'status', 'deployment/web', '--timeout=60s'), /deployment "web" successfully rolled out/);
    assert.match(await ok('-n', 'kc', 'scale', 'deployment/web', '--replicas=3'), /deployment.apps\/web scaled/);
    assert.match(await ok('-n', 'kc', 'rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    assert.equal((await ok('-n', 'kc', 'get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n').length, 3);
    const before = (await ok('-n', 'kc', 'get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    assert.match(await ok('-n', 'kc', 'rollout', 'restart', 'deployment/web'), /deployment.apps\/web restarted/);
    assert.match(await ok('-n', 'kc', 'rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    const after = (await ok('-n', 'kc', 'get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    assert.equal(after.length, 3);
    assert.equal(after.filter((p) => before.includes(p)).length, 0, 'a restart replaces every pod');
    assert.match(await ok('-n', 'kc', 'wait', '--for=condition=Available', 'deployment/web', '--timeout=30s'), /condition met/);
  } finally {
    const down = await warren('sim', 'down', '--state-dir', stateDir);
    await rm(stateDir, { recursive: true, force: true });
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
  }
});
