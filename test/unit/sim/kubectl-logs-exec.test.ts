import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { writeContainerLog } from '../../../src/sim/kubelet/container-log.js';
import { exec, kubectlOrSkip } from '../../helpers/kubectl.js';
import { eventually, startTestApiServer, type TestApiServer } from '../../helpers/apiserver.js';

// kubectl logs and exec against the API server with the kubelet's log writer
// and real processes; the pod netns is the one part left to the e2e tier
// (test/e2e/sim-cluster.test.ts), so commands run on the host here.
let api: TestApiServer;
let kubeconfigPath: string;
let logDir: string;

before(async () => {
  api = await startTestApiServer({
    pods: {
      logPath: (ns, pod, container) => `${logDir}/${ns}_${pod}_${container}.log`,
      execArgv: (_pod, command) => command,
    },
  });
  logDir = `${api.dir}/logs`;
  await mkdir(logDir);
  kubeconfigPath = `${api.dir}/kubeconfig`;
  await writeFile(kubeconfigPath, api.kubeconfigText);
  const pods = api.server.objects.registry.lookup('', 'v1', 'pods');
  api.server.objects.create(pods, 'default', { metadata: { name: 'web' }, spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'x' }, { name: 'side', image: 'y' }] } });
});
after(async () => {
  await api.stop();
});

/** A container's output through the kubelet's CRI log writer. */
async function runContainer(container: string, script: string): Promise<void> {
  const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  await writeContainerLog(`${logDir}/default_web_${container}.log`, { stdout: child.stdout, stderr: child.stderr });
}

test('kubectl logs: -c, --tail, --since, --timestamps, and -f streams new lines', async (t) => {
  const kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const k = async (...args: string[]): Promise<string> => (await exec(kubectl, ['--kubeconfig', kubeconfigPath, ...args], { timeout: 20_000 })).stdout;
  await runContainer('app', 'echo old-1; echo old-2 >&2');
  await new Promise((r) => setTimeout(r, 2100));
  await runContainer('app', 'echo new-1; echo new-2');
  await runContainer('side', 'echo from the side');
  assert.equal(await k('logs', 'web', '-c', 'app'), 'old-1\nold-2\nnew-1\nnew-2\n');
  assert.equal(await k('logs', 'web', '-c', 'side'), 'from the side\n');
  assert.equal(await k('logs', 'web', '-c', 'app', '--tail=1'), 'new-2\n');
  assert.equal(await k('logs', 'web', '-c', 'app', '--since=2s'), 'new-1\nnew-2\n');
  assert.match(await k('logs', 'web', '-c', 'app', '--tail=1', '--timestamps'), /^\d{4}-\d\d-\d\dT[\d:.]+Z new-2\n$/);
  await assert.rejects(k('logs', 'web', '-c', 'nope'), /container nope is not valid for pod web/);

  const follow = spawn(kubectl, ['--kubeconfig', kubeconfigPath, 'logs', '-f', 'web', '-c', 'app', '--tail=1']);
  let seen = '';
  follow.stdout.on('data', (d: Buffer) => (seen += d.toString()));
  try {
    await eventually(() => seen === 'new-2\n', 'the tail before following');
    await runContainer('app', 'echo live-1; sleep 0.3; echo live-2');
    await eventually(() => seen === 'new-2\nlive-1\nlive-2\n', `streamed lines (got ${JSON.stringify(seen)})`);
  } finally {
    follow.kill();
  }
});

test('kubectl exec: stdout and stderr, exit status passed through, -i with stdin', async (t) => {
  const kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const run = (args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(kubectl, ['--kubeconfig', kubeconfigPath, ...args]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill(), 20_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(input);
    });
  const sum = await run(['exec', 'web', '-c', 'app', '--', 'sh', '-c', 'echo $((6*7)); echo oops >&2']);
  assert.equal(sum.code, 0, sum.stderr);
  assert.equal(sum.stdout, '42\n');
  assert.match(sum.stderr, /oops/);
  const failed = await run(['exec', 'web', '-c', 'app', '--', 'sh', '-c', 'exit 3']);
  assert.equal(failed.code, 3, failed.stderr);
  const piped = await run(['exec', '-i', 'web', '-c', 'app', '--', 'sh', '-c', 'tr a-z A-Z'], 'hello from stdin\n');
  assert.equal(piped.stdout, 'HELLO FROM STDIN\n', piped.stderr);
  const missing = await run(['exec', 'web', '-c', 'app', '--', '/nonexistent-binary']);
  assert.notEqual(missing.code, 0);
});
