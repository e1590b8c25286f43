import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startCniServer, type CniRequest } from '../../src/agent/cni-server.js';
import { installCniPlugin } from '../../src/cni/installer.js';
import { CNI_ERROR } from '../../src/cni/cni-codes.js';
import { cniCodeForAgentStatus, httpStatusForError } from '../../src/errors/http-status.js';
import { WarrenError } from '../../src/errors/warren-error.js';
import { SUPPORTED_CNI_VERSIONS } from '../../src/cni/plugin.js';
import { addRequestBody, cniEnv, listen, netConf, prevResult, runPlugin } from '../helpers/cni-plugin.js';
import { fileURLToPath } from 'node:url';

// The static plugin (src/cni/warren-cni.c, built by node-gyp), installed the
// way the agent installs it and run the way a container runtime runs it: from
// the CNI bin dir, with only the CNI variables (no PATH), against the agent's
// real CNI endpoint on a unix socket.
const BUILT = fileURLToPath(new URL('../../../build/Release/warren-cni', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'warren-cni-exe-'));
const socket = join(dir, 'cni.sock');
let installed = '';
let agent: Server;
const calls: Array<{ op: 'add' | 'del'; req: CniRequest }> = [];
/** What the agent's add handler does; a test may swap it. */
let onAdd: (req: CniRequest) => Promise<{ enrolled: boolean }> = async () => ({ enrolled: true });

before(async () => {
  const confDir = join(dir, 'net.d');
  mkdirSync(confDir);
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(confDir, '10-bridge.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'wrn', plugins: [{ type: 'bridge' }] }));
  installed = installCniPlugin({
    confDir,
    binDir: join(dir, 'bin'),
    plugin: BUILT,
    pluginConfig: { agentSocket: socket, excludeNamespaces: ['kube-system'], timeoutSeconds: 5 },
  }).binPath;
  agent = await startCniServer(
    socket,
    {
      add: async (req) => (calls.push({ op: 'add', req }), onAdd(req)),
      del: async (req) => void calls.push({ op: 'del', req }),
    },
    () => undefined,
  );
});
after(async () => {
  await new Promise((resolve) => agent.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const cniError = (stdout: string): { cniVersion: string; code: number; msg: string; details: string } => JSON.parse(stdout);

test('VERSION prints the supported versions, nothing on stderr, without an agent', async (t) => {
  const out = await runPlugin(installed, [], { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stderr, '');
  assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', supportedVersions: [...SUPPORTED_CNI_VERSIONS] });
  const blank = await runPlugin(installed, [], { CNI_COMMAND: 'VERSION' }, '');
  assert.deepEqual(JSON.parse(blank.stdout), { cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_CNI_VERSIONS] });

  // Reported, not asserted: a shared CI machine is too noisy for a timing bound (bench/enrollment.ts measures it).
  const ms: number[] = [];
  for (let i = 0; i < 5; i++) ms.push((await runPlugin(installed, [], { CNI_COMMAND: 'VERSION' }, '')).ms);
  t.diagnostic(`VERSION run, median of 5 (spawn included): ${ms.sort((a, b) => a - b)[2]} ms`);
});

test('ADD goes to the agent as the raw request and prints the agent-side plugin answer: prevResult passed through', async () => {
  calls.length = 0;
  const out = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), prevResult);
  assert.deepEqual(calls, [{ op: 'add', req: addRequestBody }]);
});

test('ADD in an excluded namespace passes prevResult through without contacting the agent, relabelled with the config version', async () => {
  calls.length = 0;
  const env = cniEnv({ CNI_ARGS: 'K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns;K8S_POD_UID=u' });
  const absent = join(dir, 'nobody.sock');
  const out = await runPlugin(installed, [], env, JSON.stringify(netConf({ agentSocket: absent, cniVersion: '1.1.0', excludeNamespaces: ['kube-system'] })));
  assert.equal(out.code, 0, out.stdout);
  assert.deepEqual(JSON.parse(out.stdout), { ...prevResult, cniVersion: '1.1.0' });
  const custom = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: absent, excludeNamespaces: ['shop'] })));
  assert.deepEqual([custom.code, JSON.parse(custom.stdout)], [0, prevResult]);
  const del = await runPlugin(installed, [], { ...env, CNI_COMMAND: 'DEL' }, JSON.stringify(netConf({ agentSocket: socket })));
  assert.deepEqual([del.code, del.stdout], [0, '']);
  assert.deepEqual(calls, []);
});

test('ADD fails closed with the agent\'s message when it cannot enroll; bad env is the spec\'s error naming the variable', async () => {
  onAdd = async () => {
    throw new Error('rules refused: nft exited 1');
  };
  try {
    const out = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
    assert.equal(out.code, 1);
    const err = cniError(out.stdout);
    assert.equal(err.code, CNI_ERROR.agentRefused);
    assert.match(err.msg, /could not enroll pod shop\/cart-1 \(HTTP 500\): rules refused: nft exited 1/);
  } finally {
    onAdd = async () => ({ enrolled: true });
  }
  const noNetns = await runPlugin(installed, [], cniEnv({ CNI_NETNS: undefined }), JSON.stringify(netConf({ agentSocket: socket })));
  assert.equal(noNetns.code, 1);
  assert.equal(cniError(noNetns.stdout).code, CNI_ERROR.invalidEnvironment);
  assert.match(cniError(noNetns.stdout).msg, /CNI_NETNS is not set/);
  const garbage = await runPlugin(installed, [], cniEnv(), '{"cniVersion": ');
  assert.deepEqual([garbage.code, cniError(garbage.stdout).code], [1, CNI_ERROR.decodeFailure]);
});

test('the agent\'s failure reaches the kubelet as the one mapping says (error → HTTP status → CNI code): retryable is "try again later", the rest a refusal', async () => {
  const failures = [new WarrenError('ERR_NETNS_NOT_FOUND', 'sandbox still starting', { retryable: true }), new WarrenError('ERR_COMMAND_FAILED', 'nft exited 1'), new Error('plain')];
  try {
    const codes: number[] = [];
    for (const failure of failures) {
      onAdd = async () => {
        throw failure;
      };
      const out = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: socket })));
      assert.equal(out.code, 1);
      codes.push(cniError(out.stdout).code);
    }
    assert.deepEqual(codes, failures.map((f) => cniCodeForAgentStatus(httpStatusForError(f))));
    assert.deepEqual(codes, [CNI_ERROR.tryAgainLater, CNI_ERROR.agentRefused, CNI_ERROR.agentRefused]);
  } finally {
    onAdd = async () => ({ enrolled: true });
  }
});

test('agent absent or hung: ADD fails closed with code 11 within the timeout, DEL still succeeds', async () => {
  const hung = createServer(() => undefined);
  const hungSock = join(dir, 'hung.sock');
  await listen(hung, hungSock);
  try {
    const missing = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: join(dir, 'nobody.sock') })));
    assert.equal(missing.code, 1, missing.stdout + missing.stderr);
    const err = cniError(missing.stdout);
    assert.equal(err.cniVersion, '1.0.0');
    assert.equal(err.code, CNI_ERROR.tryAgainLater);
    assert.match(err.msg, /ENOENT.*is the warren node agent running/);
    assert.equal(err.details, 'ENOENT');

    const slow = await runPlugin(installed, [], cniEnv(), JSON.stringify(netConf({ agentSocket: hungSock, timeoutSeconds: 0.5 })));
    assert.equal(slow.code, 1);
    assert.equal(cniError(slow.stdout).code, CNI_ERROR.tryAgainLater);
    assert.match(cniError(slow.stdout).msg, /no answer within 0.5s/);
    assert.ok(slow.ms < 3000, `took ${slow.ms} ms with a 0.5 s timeout`);

    for (const sock of [join(dir, 'nobody.sock'), hungSock]) {
      const deleted = await runPlugin(installed, [], cniEnv({ CNI_COMMAND: 'DEL' }), JSON.stringify(netConf({ agentSocket: sock })));
      assert.deepEqual([deleted.code, deleted.stdout], [0, '']);
    }
  } finally {
    hung.closeAllConnections();
    await new Promise((r) => hung.close(r));
  }
});

test('DEL tells the agent', async () => {
  calls.length = 0;
  const out = await runPlugin(installed, [], cniEnv({ CNI_COMMAND: 'DEL' }), JSON.stringify(netConf({ agentSocket: socket })));
  assert.deepEqual([out.code, out.stdout], [0, '']);
  assert.deepEqual(calls, [{ op: 'del', req: addRequestBody }]);
});
