import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hboneLimits, loadNodeAgentConfig } from '../../src/agent/config.js';
import { DEFAULT_HBONE_LIMITS } from '../../src/tunnel/hbone-limits.js';
import { WarrenError } from '../../src/errors/warren-error.js';

test('defaults are what a DaemonSet needs; env fills in; flags win', () => {
  const c = loadNodeAgentConfig({}, { NODE_NAME: 'node-1' });
  assert.equal(c.nodeName, 'node-1');
  assert.equal(c.cniConfDir, '/etc/cni/net.d');
  assert.equal(c.cniSocket, '/var/run/warren/cni.sock');
  assert.equal(c.redirectBackend, 'auto');
  assert.deepEqual(c.excludeNamespaces, ['kube-system']);
  assert.equal(c.caAddress, 'https://warren-ca.warren-system.svc:15012');
  assert.equal(c.trustDomain, 'cluster.local');
  assert.equal(c.adminAddress, '127.0.0.1:15000');
  assert.equal(c.metricsAddress, '0.0.0.0:15020');
  const env = { NODE_NAME: 'node-1', WARREN_EXCLUDE_NAMESPACES: 'kube-system, istio-system', WARREN_REDIRECT_BACKEND: 'iptables' };
  assert.deepEqual(loadNodeAgentConfig({}, env).excludeNamespaces, ['kube-system', 'istio-system']);
  const flagged = loadNodeAgentConfig({ redirectBackend: 'nft', nodeName: 'node-2', drainSeconds: '7' }, env);
  assert.equal(flagged.redirectBackend, 'nft');
  assert.equal(flagged.nodeName, 'node-2');
  assert.equal(flagged.drainSeconds, 7);
});

test('a bad or missing value is an error naming the flag', () => {
  const fails = (flags: Record<string, unknown>, env: NodeJS.ProcessEnv, flag: RegExp) =>
    assert.throws(() => loadNodeAgentConfig(flags, env), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_CONFIG' && flag.test(e.message));
  fails({}, {}, /^--node-name: /);
  fails({ redirectBackend: 'ebpf' }, { NODE_NAME: 'n' }, /^--redirect-backend: /);
  fails({ drainSeconds: 'soon' }, { NODE_NAME: 'n' }, /^--drain-seconds: /);
  fails({ readinessAddress: 'nowhere' }, { NODE_NAME: 'n' }, /^--readiness-address: /);
  fails({ nodeName: 'Node_1' }, {}, /^--node-name: /);
  fails({ caAddress: 'http://10.0.0.1:15012' }, { NODE_NAME: 'n' }, /^--ca-address: must be an https/);
  fails({ trustDomain: 'Cluster.Local' }, { NODE_NAME: 'n' }, /^--trust-domain: /);
  fails({}, { NODE_NAME: 'n', WARREN_ADMIN_ADDRESS: 'localhost' }, /^--admin-address: /);
});

test('the CNI plugin executable comes from --cni-plugin-binary or its variable, and must be an absolute path', () => {
  assert.equal(loadNodeAgentConfig({}, { NODE_NAME: 'n' }).cniPluginBinary, undefined, 'unset: the packaged one, or the shim');
  const env = { NODE_NAME: 'n', WARREN_CNI_PLUGIN_BINARY: '/opt/warren/warren-cni' };
  assert.equal(loadNodeAgentConfig({}, env).cniPluginBinary, '/opt/warren/warren-cni');
  assert.equal(loadNodeAgentConfig({ cniPluginBinary: '/srv/warren-cni' }, env).cniPluginBinary, '/srv/warren-cni');
  assert.throws(
    () => loadNodeAgentConfig({ cniPluginBinary: 'dist/warren-cni' }, env),
    (e: unknown) => e instanceof WarrenError && e.code === 'ERR_CONFIG' && /^--cni-plugin-binary: must be an absolute path/.test(e.message),
  );
});

test('a flag that was not given leaves its environment variable in force', () => {
  const c = loadNodeAgentConfig({ nodeName: undefined, drainSeconds: undefined, caAddress: undefined }, { NODE_NAME: 'node-9', WARREN_DRAIN_SECONDS: '9', WARREN_CA_ADDRESS: 'https://10.0.0.1:15012' });
  assert.equal(c.nodeName, 'node-9');
  assert.equal(c.drainSeconds, 9);
  assert.equal(c.caAddress, 'https://10.0.0.1:15012');
});

test('the root namespace of mesh-wide policies is its own setting, apart from the namespace the agent runs in', () => {
  const d = loadNodeAgentConfig({}, { NODE_NAME: 'n', POD_NAMESPACE: 'mesh-agents' });
  assert.equal(d.rootNamespace, 'warren-system', 'default: warren-system, whatever POD_NAMESPACE says');
  assert.equal(d.systemNamespace, 'mesh-agents');
  assert.equal(loadNodeAgentConfig({}, { NODE_NAME: 'n', WARREN_ROOT_NAMESPACE: 'istio-system' }).rootNamespace, 'istio-system');
  assert.equal(loadNodeAgentConfig({ rootNamespace: 'mesh-root' }, { NODE_NAME: 'n', WARREN_ROOT_NAMESPACE: 'istio-system' }).rootNamespace, 'mesh-root');
  assert.throws(
    () => loadNodeAgentConfig({}, { NODE_NAME: 'n', WARREN_ROOT_NAMESPACE: 'Istio_System' }),
    (e: unknown) => e instanceof WarrenError && e.code === 'ERR_CONFIG' && /^--root-namespace: must be a namespace name/.test(e.message),
  );
});

test('the HBONE bounds: sensible defaults, env and flags set them, nonsense is refused naming the flag', () => {
  assert.deepEqual(hboneLimits(loadNodeAgentConfig({}, { NODE_NAME: 'n' })), DEFAULT_HBONE_LIMITS);
  assert.ok(DEFAULT_HBONE_LIMITS.handshakeTimeoutMs <= 10_000, 'a few seconds, not Node’s 120 s');
  const env = { NODE_NAME: 'n', WARREN_HBONE_MAX_CONNECTIONS_PER_PEER: '8', WARREN_HBONE_HANDSHAKE_TIMEOUT: '2s', WARREN_HBONE_STREAM_IDLE_TIMEOUT: '10m' };
  const c = hboneLimits(loadNodeAgentConfig({ hboneMaxConnections: '100', hboneStreamBufferBytes: '131072' }, env));
  assert.deepEqual(c, { maxConnectionsPerPeer: 8, maxConnections: 100, handshakeTimeoutMs: 2000, streamIdleTimeoutMs: 600_000, streamBufferBytes: 131072 });
  const fails = (flags: Record<string, unknown>, flag: RegExp) =>
    assert.throws(() => loadNodeAgentConfig(flags, { NODE_NAME: 'n' }), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_CONFIG' && flag.test(e.message));
  fails({ hboneMaxConnectionsPerPeer: '0' }, /^--hbone-max-connections-per-peer: /);
  fails({ hboneMaxConnections: 'many' }, /^--hbone-max-connections: /);
  fails({ hboneHandshakeTimeout: '10m' }, /^--hbone-handshake-timeout: must be between/);
  fails({ hboneHandshakeTimeout: 'soon' }, /^--hbone-handshake-timeout: /);
  fails({ hboneStreamIdleTimeout: '10ms' }, /^--hbone-stream-idle-timeout: /);
  fails({ hboneStreamBufferBytes: '1024' }, /^--hbone-stream-buffer-bytes: /);
});
