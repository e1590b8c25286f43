import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CNI_ERROR } from '../../src/cni/cni-codes.js';
import { parseCniArgs, runCniPlugin, type AgentPath, type AgentResponse, type CniPluginDeps } from '../../src/cni/plugin.js';
import { addRequestBody, cniEnv as env, netConf as conf, prevResult } from '../helpers/cni-plugin.js';

interface Call {
  path: AgentPath;
  body: object;
  socketPath: string;
  timeoutMs: number;
}

function agent(answer: (path: AgentPath) => Promise<AgentResponse>): CniPluginDeps & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    callAgent(path, body, socketPath, timeoutMs) {
      calls.push({ path, body, socketPath, timeoutMs });
      return answer(path);
    },
  };
}

const ok = (): CniPluginDeps & { calls: Call[] } => agent(async () => ({ status: 200, body: '{"enrolled":true}' }));
const down = (): CniPluginDeps & { calls: Call[] } =>
  agent(async () => {
    throw Object.assign(new Error('connect ECONNREFUSED /run/test/cni.sock'), { code: 'ECONNREFUSED' });
  });

function cniError(out: { exitCode: number; stdout: string }): { cniVersion: string; code: number; msg: string; details: string } {
  assert.equal(out.exitCode, 1, out.stdout);
  return JSON.parse(out.stdout) as { cniVersion: string; code: number; msg: string; details: string };
}

test('ADD in an excluded namespace passes prevResult through without contacting the agent', async () => {
  const deps = down();
  const out = await runCniPlugin(env({ CNI_ARGS: 'K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns;K8S_POD_UID=u' }), JSON.stringify(conf()), deps);
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), prevResult);
  assert.equal(deps.calls.length, 0);

  const custom = await runCniPlugin(env(), JSON.stringify(conf({ excludeNamespaces: ['shop'] })), deps);
  assert.equal(custom.exitCode, 0);
  assert.equal(deps.calls.length, 0);
});

test('ADD tells the agent about the pod and prints prevResult unchanged on 200', async () => {
  const deps = ok();
  const out = await runCniPlugin(env(), JSON.stringify(conf()), deps);
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), prevResult);
  assert.deepEqual(deps.calls, [
    {
      path: '/v1/cni/add',
      body: addRequestBody,
      socketPath: '/run/test/cni.sock',
      timeoutMs: 5000,
    },
  ]);
});

test('ADD uses the defaults for socket and timeout and labels the output with the config cniVersion', async () => {
  const deps = ok();
  const { agentSocket: _unused, ...rest } = conf({ cniVersion: '1.1.0', timeoutSeconds: 2 });
  const out = await runCniPlugin(env(), JSON.stringify(rest), deps);
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), { ...prevResult, cniVersion: '1.1.0' });
  assert.equal(deps.calls[0]?.socketPath, '/var/run/warren/cni.sock');
  assert.equal(deps.calls[0]?.timeoutMs, 2000);
});

test('ADD fails closed when the agent answers non-200, passing on its message', async () => {
  const refused = agent(async () => ({ status: 500, body: '{"message":"nft: rules could not be applied in /var/run/netns/p1"}' }));
  const e500 = cniError(await runCniPlugin(env(), JSON.stringify(conf()), refused));
  assert.equal(e500.code, CNI_ERROR.agentRefused);
  assert.equal(e500.cniVersion, '1.0.0');
  assert.match(e500.msg, /shop\/cart-1/);
  assert.match(e500.msg, /\(HTTP 500\): nft: rules could not be applied/);

  const busy = agent(async () => ({ status: 503, body: 'starting' }));
  const e503 = cniError(await runCniPlugin(env(), JSON.stringify(conf()), busy));
  assert.equal(e503.code, CNI_ERROR.tryAgainLater);
  assert.equal(e503.details, 'starting');
});

test('ADD fails closed when the agent is unreachable or slow', async () => {
  const unreachable = cniError(await runCniPlugin(env(), JSON.stringify(conf()), down()));
  assert.equal(unreachable.code, CNI_ERROR.tryAgainLater);
  assert.match(unreachable.msg, /ECONNREFUSED/);
  assert.match(unreachable.msg, /is the warren node agent running/);
  assert.equal(unreachable.details, 'ECONNREFUSED');

  const hung = agent(() => new Promise<AgentResponse>(() => undefined));
  const started = Date.now();
  const slow = cniError(await runCniPlugin(env(), JSON.stringify(conf({ timeoutSeconds: 0.2 })), hung));
  assert.ok(Date.now() - started < 2000, 'the plugin waited past its timeout');
  assert.equal(slow.code, CNI_ERROR.tryAgainLater);
  assert.match(slow.msg, /no answer within 0.2s/);
});

test('bad input is a CNI error naming the field, with the spec code', async () => {
  const deps = ok();
  const cases: Array<[string, Record<string, string | undefined>, string, number, RegExp]> = [
    ['malformed stdin', env(), '{"cniVersion": ', CNI_ERROR.decodeFailure, /not valid JSON/],
    ['missing CNI_NETNS', env({ CNI_NETNS: undefined }), JSON.stringify(conf()), CNI_ERROR.invalidEnvironment, /CNI_NETNS/],
    ['missing CNI_CONTAINERID', env({ CNI_CONTAINERID: '' }), JSON.stringify(conf()), CNI_ERROR.invalidEnvironment, /CNI_CONTAINERID/],
    ['missing pod uid', env({ CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1' }), JSON.stringify(conf()), CNI_ERROR.invalidEnvironment, /K8S_POD_UID/],
    ['malformed CNI_ARGS', env({ CNI_ARGS: 'K8S_POD_NAME' }), JSON.stringify(conf()), CNI_ERROR.invalidEnvironment, /CNI_ARGS/],
    ['wrong type', env(), JSON.stringify(conf({ type: 'bridge' })), CNI_ERROR.invalidConfig, /type/],
    ['missing name', env(), JSON.stringify(conf({ name: undefined })), CNI_ERROR.invalidConfig, /name/],
    ['bad timeout', env(), JSON.stringify(conf({ timeoutSeconds: -1 })), CNI_ERROR.invalidConfig, /timeoutSeconds/],
    ['bad excludeNamespaces', env(), JSON.stringify(conf({ excludeNamespaces: 'kube-system' })), CNI_ERROR.invalidConfig, /excludeNamespaces/],
    ['no prevResult', env(), JSON.stringify(conf({ prevResult: undefined })), CNI_ERROR.invalidConfig, /prevResult/],
    ['bad prevResult ip', env(), JSON.stringify(conf({ prevResult: { ips: [{ address: '10.0.0.1' }] } })), CNI_ERROR.invalidConfig, /prevResult\.ips\.0\.address/],
    ['unsupported version', env(), JSON.stringify(conf({ cniVersion: '0.3.1' })), CNI_ERROR.incompatibleVersion, /0\.3\.1/],
    ['unknown command', env({ CNI_COMMAND: 'FROB' }), JSON.stringify(conf()), CNI_ERROR.invalidEnvironment, /CNI_COMMAND.*FROB/],
    ['no command', env({ CNI_COMMAND: undefined }), JSON.stringify(conf()), CNI_ERROR.invalidEnvironment, /CNI_COMMAND/],
  ];
  for (const [what, e, stdin, code, msg] of cases) {
    const err = cniError(await runCniPlugin(e, stdin, deps));
    assert.equal(err.code, code, `${what}: ${err.msg}`);
    assert.match(err.msg, msg, what);
  }
  assert.equal(deps.calls.length, 0, 'invalid input never reaches the agent');
});

test('DEL informs the agent best effort and always exits 0 with no output', async () => {
  const deps = ok();
  const { prevResult: _p, ...noPrev } = conf();
  assert.deepEqual(await runCniPlugin(env({ CNI_COMMAND: 'DEL' }), JSON.stringify(noPrev), deps), { exitCode: 0, stdout: '' });
  assert.equal(deps.calls.length, 1);
  assert.equal(deps.calls[0]?.path, '/v1/cni/del');
  assert.deepEqual(deps.calls[0]?.body, { podName: 'cart-1', podNamespace: 'shop', podUid: 'uid-1', containerId: 'c0ffee', netns: '/var/run/netns/p1', ips: [] });
  assert.ok((deps.calls[0]?.timeoutMs ?? Infinity) <= 1000, 'DEL uses a short timeout');

  const inputs: Array<[Record<string, string | undefined>, string, CniPluginDeps]> = [
    [env({ CNI_COMMAND: 'DEL' }), JSON.stringify(conf()), down()],
    [env({ CNI_COMMAND: 'DEL' }), JSON.stringify(conf()), agent(async () => ({ status: 500, body: '{"message":"boom"}' }))],
    [env({ CNI_COMMAND: 'DEL' }), JSON.stringify(conf({ timeoutSeconds: 0.1 })), agent(() => new Promise<AgentResponse>(() => undefined))],
    [env({ CNI_COMMAND: 'DEL' }), 'not json', ok()],
    [env({ CNI_COMMAND: 'DEL' }), JSON.stringify(conf({ type: 'bridge' })), ok()],
    [{ CNI_COMMAND: 'DEL' }, JSON.stringify(conf()), ok()],
    [env({ CNI_COMMAND: 'DEL', CNI_ARGS: '=;x' }), JSON.stringify(conf()), ok()],
  ];
  for (const [e, stdin, d] of inputs) assert.deepEqual(await runCniPlugin(e, stdin, d), { exitCode: 0, stdout: '' });
});

test('VERSION lists the supported versions', async () => {
  const out = await runCniPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}', ok());
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  const bare = await runCniPlugin({ CNI_COMMAND: 'VERSION' }, '', ok());
  assert.equal(JSON.parse(bare.stdout).cniVersion, '1.1.0');
});

test('CHECK validates without contacting the agent; GC and STATUS succeed', async () => {
  const deps = down();
  assert.deepEqual(await runCniPlugin(env({ CNI_COMMAND: 'CHECK' }), JSON.stringify(conf()), deps), { exitCode: 0, stdout: '' });
  const noPrev = cniError(await runCniPlugin(env({ CNI_COMMAND: 'CHECK' }), JSON.stringify(conf({ prevResult: undefined })), deps));
  assert.equal(noPrev.code, CNI_ERROR.invalidConfig);
  const noEnv = cniError(await runCniPlugin({ CNI_COMMAND: 'CHECK' }, JSON.stringify(conf()), deps));
  assert.equal(noEnv.code, CNI_ERROR.invalidEnvironment);
  for (const command of ['GC', 'STATUS']) {
    assert.deepEqual(await runCniPlugin({ CNI_COMMAND: command }, JSON.stringify(conf({ cniVersion: '1.1.0', prevResult: undefined })), deps), { exitCode: 0, stdout: '' });
  }
  assert.equal(deps.calls.length, 0);
});

test('parseCniArgs splits K=V pairs, values may hold "="', () => {
  assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=a;X=b=c;'), { IgnoreUnknown: '1', K8S_POD_NAME: 'a', X: 'b=c' });
  assert.deepEqual(parseCniArgs(undefined), {});
  assert.deepEqual(parseCniArgs(''), {});
  assert.throws(() => parseCniArgs('novalue'), { code: 'ERR_CNI_ENV' });
});
