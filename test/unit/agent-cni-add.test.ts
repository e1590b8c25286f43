import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { handleCniAdd, type CniAddDeps } from '../../src/agent/cni-add.js';
import { startCniServer, type CniRequest } from '../../src/agent/cni-server.js';
import type { PodView } from '../../src/agent/enrollment-plan.js';
import { CNI_ERROR } from '../../src/cni/cni-codes.js';
import { httpStatusForError } from '../../src/errors/http-status.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { addRequestBody, cniEnv, netConf, runPlugin } from '../helpers/cni-plugin.js';
import { rootTest } from '../helpers/root.js';

/** The static plugin binary node-gyp builds (src/cni/warren-cni.c): what the runtime runs. */
const PLUGIN_BINARY = fileURLToPath(new URL('../../../build/Release/warren-cni', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'warren-cni-add-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const req: CniRequest = addRequestBody;
const pod = (over: { uid?: string; nodeName?: string; labels?: Record<string, string> } = {}): V1Pod => ({
  metadata: { name: req.podName, namespace: req.podNamespace, uid: over.uid ?? req.podUid, labels: over.labels ?? {} },
  spec: { containers: [], serviceAccountName: 'cart', ...(over.nodeName === undefined ? { nodeName: 'node-a' } : over.nodeName === '' ? {} : { nodeName: over.nodeName }) },
  status: { phase: 'Pending' },
});

/** Fakes for the agent's informers and enrollment; `enrolled` records what would have been enrolled. */
function fakes(over: Partial<CniAddDeps> & { apiPod?: V1Pod; nsLabels?: Record<string, string> } = {}) {
  const enrolled: Array<{ pod: PodView; netns: string }> = [];
  let reads = 0;
  const deps: CniAddDeps = {
    nodeName: 'node-a',
    policy: { excludedNamespaces: new Set(['kube-system']) },
    synced: () => true,
    readPod: async () => (reads++, over.apiPod ?? pod()),
    namespaceLabels: async () => over.nsLabels ?? { 'warren.io/dataplane-mode': 'ambient' },
    enroll: async (p, netns) => void enrolled.push({ pod: p, netns }),
    ...over,
  };
  return { deps, enrolled, reads: () => reads };
}

test('ADD before the initial sync: a retryable error (503, CNI "try again later"), nothing read or enrolled', async () => {
  const f = fakes({ synced: () => false });
  const err = await handleCniAdd(req, f.deps).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof WarrenError);
  assert.equal(err.code, 'ERR_AGENT_NOT_SYNCED');
  assert.equal(err.retryable, true);
  assert.equal(httpStatusForError(err), 503);
  assert.equal(f.reads(), 0);
  assert.deepEqual(f.enrolled, []);
});

test('ADD in an excluded namespace is skipped even before the sync (those pods need no policy)', async () => {
  const f = fakes({ synced: () => false });
  assert.deepEqual(await handleCniAdd({ ...req, podNamespace: 'kube-system' }, f.deps), { enrolled: false, reason: 'excluded-namespace' });
});

test('ADD after the sync enrolls the labeled pod in the netns and with the IPs the plugin gave', async () => {
  const f = fakes();
  assert.deepEqual(await handleCniAdd(req, f.deps), { enrolled: true });
  assert.equal(f.enrolled.length, 1);
  assert.equal(f.enrolled[0]!.netns, req.netns);
  assert.deepEqual(f.enrolled[0]!.pod.ips, req.ips);
  assert.equal(f.enrolled[0]!.pod.serviceAccount, 'cart');
});

test('ADD for a pod that is not labeled is skipped, not enrolled', async () => {
  const f = fakes({ nsLabels: {} });
  assert.deepEqual(await handleCniAdd(req, f.deps), { enrolled: false, reason: 'not-labeled' });
  assert.deepEqual(f.enrolled, []);
});

test("ADD for a pod scheduled on another node (or none) is refused for good, never enrolled", async () => {
  for (const nodeName of ['node-b', '']) {
    const f = fakes({ apiPod: pod({ nodeName }) });
    const err = await handleCniAdd(req, f.deps).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof WarrenError, nodeName);
    assert.equal(err.code, 'ERR_CNI_POD_NODE');
    assert.equal(err.retryable, false);
    assert.equal(httpStatusForError(err), 500);
    assert.deepEqual(f.enrolled, []);
  }
});

test('ADD naming a pod whose UID differs (a replaced pod) is refused', async () => {
  const f = fakes({ apiPod: pod({ uid: 'uid-2' }) });
  await assert.rejects(handleCniAdd(req, f.deps), (e: WarrenError) => e.code === 'ERR_CNI_POD' && !e.retryable);
  assert.deepEqual(f.enrolled, []);
});

test('an API server failure while reading the pod stays retryable through to the HTTP status', async () => {
  const f = fakes({ readPod: async () => Promise.reject(new WarrenError('ERR_CNI_POD', 'the API server answered 500', { retryable: true })) });
  const err = await handleCniAdd(req, f.deps).then(() => undefined, (e: unknown) => e);
  assert.equal(httpStatusForError(err), 503);
  assert.equal(httpStatusForError(new Error('plain')), 500);
});

async function withServer(socketName: string, deps: CniAddDeps, fn: (socket: string) => Promise<void>): Promise<void> {
  const socket = join(dir, socketName, 'cni.sock');
  const logged: string[] = [];
  const server = await startCniServer(socket, { add: (r) => handleCniAdd(r, deps), del: async () => {} }, (msg) => void logged.push(msg));
  try {
    await fn(socket);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

rootTest('the real plugin prints CNI code 11 while the agent has not synced, then succeeds once it has', async () => {
  let synced = false;
  const f = fakes({ synced: () => synced });
  await withServer('sync', f.deps, async (socket) => {
    const before = await runPlugin(PLUGIN_BINARY, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
    assert.equal(before.code, 1, before.stdout + before.stderr);
    const err = JSON.parse(before.stdout) as { code: number; msg: string };
    assert.equal(err.code, CNI_ERROR.tryAgainLater);
    assert.match(err.msg, /HTTP 503.*not synced/);
    synced = true;
    const afterSync = await runPlugin(PLUGIN_BINARY, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
    assert.equal(afterSync.code, 0, afterSync.stdout + afterSync.stderr);
    assert.equal(f.enrolled.length, 1);
  });
});

rootTest('a refusal that retrying cannot fix reaches the kubelet as 999, not 11', async () => {
  const f = fakes({ apiPod: pod({ nodeName: 'node-b' }) });
  await withServer('refused', f.deps, async (socket) => {
    const out = await runPlugin(PLUGIN_BINARY, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
    assert.equal(out.code, 1);
    assert.equal((JSON.parse(out.stdout) as { code: number }).code, CNI_ERROR.agentRefused);
  });
});

/** POSTs an ADD body over the socket; resolves with the status, or the error's code when the connection was dropped. */
function post(socket: string, body: object): Promise<number | string> {
  return new Promise((resolve) => {
    const payload = JSON.stringify(body);
    const r = request({ socketPath: socket, path: '/v1/cni/add', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    r.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    r.end(payload);
  });
}

rootTest('netns paths outside /proc and /var/run/netns are refused with a 400 before anything is done', async () => {
  const f = fakes();
  await withServer('netns', f.deps, async (socket) => {
    for (const netns of ['/etc/passwd', '/var/run/netns/../../../proc/1/ns/net', '/proc/1/ns/../ns/net', '/proc/self/ns/net', '/tmp/netns/x', 'var/run/netns/x']) {
      assert.equal(await post(socket, { ...req, netns }), 400, netns);
    }
    assert.deepEqual(f.enrolled, []);
    for (const netns of ['/proc/4242/ns/net', '/proc/4242/task/4243/ns/net', '/var/run/netns/cni-1234-abcd', '/run/netns/p1']) {
      assert.equal(await post(socket, { ...req, netns }), 200, netns);
    }
  });
});

rootTest('the socket is mode 0600 whatever the umask', async () => {
  const old = process.umask(0);
  try {
    await withServer('umask', fakes().deps, async (socket) => {
      assert.equal(statSync(socket).mode & 0o777, 0o600);
    });
  } finally {
    process.umask(old);
  }
});

rootTest('a caller that is not root is refused (SO_PEERCRED) even when the socket file lets it connect', async () => {
  const f = fakes();
  await withServer('peercred', f.deps, async (socket) => {
    // As if someone loosened the file and its directory: the uid check still holds.
    chmodSync(join(dir, 'peercred'), 0o755);
    chmodSync(dir, 0o755);
    chmodSync(socket, 0o666);
    const script = `const r=require('node:http').request({socketPath:${JSON.stringify(socket)},path:'/v1/cni/add',method:'POST',agent:false},(res)=>{console.log('status',res.statusCode);res.resume()});r.on('error',(e)=>console.log('error',e.code));r.end(${JSON.stringify(JSON.stringify(req))})`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
      child.on('error', reject);
      child.on('close', () => resolve(text.trim()));
    });
    assert.match(out, /^error (ECONNRESET|EPIPE)$/, out);
    assert.deepEqual(f.enrolled, []);
    // Root (this process) is still answered.
    assert.equal(await post(socket, req), 200);
  });
});
