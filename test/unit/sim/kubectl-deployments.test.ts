import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { startControllerManager, type ControllerManager } from '../../../src/sim/controllers/controller-manager.js';
import { exec, kubectlOrSkip } from '../../helpers/kubectl.js';
import { startTestApiServer, type TestApiServer } from '../../helpers/apiserver.js';

// kubectl's Deployment commands against the real controllers. Without root no
// pod can run, so a stand-in for the kubelet marks bound pods Running and Ready
// (the e2e tier, test/e2e/sim-kubectl.test.ts, runs them for real).
let api: TestApiServer;
let controllers: ControllerManager;
let unsubscribe = (): void => {};
let kubeconfigPath: string;

before(async () => {
  api = await startTestApiServer();
  kubeconfigPath = `${api.dir}/kubeconfig`;
  await writeFile(kubeconfigPath, api.kubeconfigText);
  const o = api.server.objects;
  const pods = o.registry.lookup('', 'v1', 'pods');
  o.create(o.registry.lookup('', 'v1', 'nodes'), undefined, { metadata: { name: 'node-1' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  controllers = startControllerManager(o, () => {}, 200);
  const runBoundPods = (): void => {
    for (const p of o.store.list(pods)) {
      if (!p.spec?.nodeName || p.status?.phase === 'Running') continue;
      setTimeout(() => {
        const live = o.store.find(pods, p.metadata.namespace, p.metadata.name);
        if (live === undefined || live.status?.phase === 'Running') return;
        const conditions = [...(live.status?.conditions ?? []), { type: 'Ready', status: 'True' }];
        o.update(pods, live.metadata.namespace, live.metadata.name, { ...live, status: { ...live.status, phase: 'Running', conditions } }, 'status');
      }, 300);
    }
  };
  unsubscribe = o.store.subscribe((ev) => {
    if (ev.typeKey === '/v1/pods') setImmediate(runBoundPods);
  });
});
after(async () => {
  unsubscribe();
  controllers.stop();
  await api.stop();
});

test('kubectl rollout status|restart, scale, wait --for=condition against the Deployment controller', async (t) => {
  const kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  const k = async (...args: string[]): Promise<string> => (await exec(kubectl, ['--kubeconfig', kubeconfigPath, ...args], { timeout: 40_000 })).stdout;
  const podNames = async (): Promise<string[]> => (await k('get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n').filter((l) => l !== '').sort();
  await k('create', 'deployment', 'web', '--image=http-echo', '--replicas=2');
  assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=30s'), /deployment "web" successfully rolled out/);
  assert.equal((await podNames()).length, 2);
  assert.match(await k('scale', 'deployment/web', '--replicas=3'), /deployment.apps\/web scaled/);
  assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=30s'), /successfully rolled out/);
  const before = await podNames();
  assert.equal(before.length, 3);
  assert.match(await k('rollout', 'restart', 'deployment/web'), /deployment.apps\/web restarted/);
  assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=30s'), /successfully rolled out/);
  const after = await podNames();
  assert.equal(after.length, 3);
  assert.deepEqual(after.filter((p) => before.includes(p)), [], 'a restart replaces every pod');
  assert.match(await k('wait', '--for=condition=Available', 'deployment/web', '--timeout=20s'), /deployment.apps\/web condition met/);
  assert.match(await k('wait', '--for=condition=Ready', after[0]!, '--timeout=20s'), /condition met/);
  assert.match(await k('scale', 'deployment/web', '--replicas=0'), /scaled/);
  assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=30s'), /successfully rolled out/);
  assert.deepEqual(await podNames(), []);
});
