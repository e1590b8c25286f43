/**
 * Issue 17 finding 5, for pods that already run when the agent starts: `warren node`
 * enrolls none of them before its initial sync (policies, PeerAuthentications, the
 * cluster), or they would run without their policies. The real agent process runs
 * against the simulator's API server without the warren CRDs, so its policy informers
 * cannot sync; a labeled pod is already running on its node. Every enrollment attempt
 * shows on the pod (the agent annotates `warren.io/redirection`; here `failed`, as no CA
 * answers): none before the CRDs exist, one soon after.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { REDIRECTION_ANNOTATION } from '../../src/k8s/enrollment.js';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { eventually, startTestApiServer } from '../helpers/apiserver.js';
import { rootTest } from '../helpers/root.js';

const WARREN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

rootTest('a pod already running when the agent starts is not enrolled before the initial sync, and is once it completes', async () => {
  const api = await startTestApiServer();
  const dir = await mkdtemp(`${tmpdir()}/warren-initial-sync-`);
  const log = `${dir}/agent.log`;
  let agent: ReturnType<typeof spawn> | undefined;
  try {
    const core = api.kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'mesh', labels: { 'warren.io/dataplane-mode': 'ambient' } } } });
    await core.createNamespacedPod({ namespace: 'mesh', body: { metadata: { name: 'running' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'sleep' }] } } });
    await core.replaceNamespacedPodStatus({
      namespace: 'mesh',
      name: 'running',
      body: { metadata: { name: 'running', namespace: 'mesh' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'sleep' }] }, status: { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }] } },
    });
    await writeFile(`${dir}/kubeconfig`, api.kubeconfigText);
    const out = openSync(log, 'w');
    agent = spawn(
      process.execPath,
      [WARREN, 'node', '--kubeconfig', `${dir}/kubeconfig`, '--node-name', 'node-1', '--no-install-cni', '--cni-socket', `${dir}/cni.sock`, '--state-dir', dir,
        '--readiness-address', '127.0.0.1:0', '--metrics-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--ca-address', 'https://127.0.0.1:9', '--ca-token-file', `${dir}/no-token`, '--drain-seconds', '0'],
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
    const annotation = async (): Promise<string | undefined> => (await core.readNamespacedPod({ namespace: 'mesh', name: 'running' })).metadata?.annotations?.[REDIRECTION_ANNOTATION];

    // The pod and namespace informers sync at once; the policy ones cannot (no CRD): the agent waits.
    await eventually(async () => /authorizationpolicies.*informer stopped, restarting/.test(await readFile(log, 'utf8')), 'the agent up, its policy informer waiting for the CRD', 15_000);
    // Two more failed lists of the policies (one a second): the agent keeps waiting, with its pod informer long synced.
    const policyRestarts = async (): Promise<number> => (await readFile(log, 'utf8')).match(/authorizationpolicies.*informer stopped, restarting/g)?.length ?? 0;
    await eventually(async () => (await policyRestarts()) >= 3, 'two more restarts of the policy informer', 15_000);
    const early = await readFile(log, 'utf8');
    assert.doesNotMatch(early, /node agent ready/, 'the agent is not ready before its initial sync');
    assert.equal(await annotation(), undefined, 'the running pod was enrolled (or tried) before the initial sync');
    assert.doesNotMatch(early, /enrollment failed|pod enrolled/, 'an enrollment was attempted before the initial sync');

    // Once the policies can be listed, the sync completes and the running pod is enrolled (here: tried, as no CA answers).
    const ext = api.kc.makeApiClient(ApiextensionsV1Api);
    for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
    await eventually(async () => /node agent ready/.test(await readFile(log, 'utf8')), 'the agent ready after the CRDs exist', 15_000);
    await eventually(async () => (await annotation()) !== undefined, 'the enrollment of the running pod after the sync', 30_000);
  } catch (err) {
    console.error(`# the agent's log:\n${await readFile(log, 'utf8').catch(() => '(none)')}`);
    throw err;
  } finally {
    if (agent !== undefined && agent.exitCode === null) {
      const exited = new Promise((resolve) => agent!.once('exit', resolve));
      agent.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000).then(() => agent!.kill('SIGKILL'))]);
    }
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
