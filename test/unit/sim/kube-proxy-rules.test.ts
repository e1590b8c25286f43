import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGolden } from '../../helpers/golden.js';
import {
  buildKubeProxyScript,
  kubeProxyChainName,
  removeKubeProxyScript,
  type KubeProxyInput,
} from '../../../src/sim/kube-proxy/service-rules.js';
import { applyKubeProxyRules, listKubeProxyTable, removeKubeProxyRules } from '../../../src/sim/kube-proxy/apply.js';
import type { CommandRunner, RunOptions } from '../../../src/redirect/runner.js';
import { WarrenError } from '../../../src/errors/warren-error.js';

const POD_CIDR = '10.244.1.0/24';

const ONE_SERVICE: KubeProxyInput = {
  podCidr: POD_CIDR,
  services: [{ namespace: 'default', name: 'web', clusterIP: '10.96.0.50', ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] }],
  endpoints: [{ namespace: 'default', service: 'web', port: 8080, addresses: ['10.244.1.11', '10.244.1.10'] }],
};

const MULTI_PORT: KubeProxyInput = {
  podCidr: POD_CIDR,
  services: [
    {
      namespace: 'shop',
      name: 'frontend',
      clusterIP: '10.96.3.7',
      ports: [
        { name: 'https', port: 443, protocol: 'TCP', targetPort: 8443 },
        { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
        { name: 'metrics', port: 9090, protocol: 'UDP', targetPort: 9090 },
      ],
    },
  ],
  endpoints: [
    // Two slices: a named targetPort resolved to different numbers on different pods.
    { namespace: 'shop', service: 'frontend', portName: 'http', port: 8080, addresses: ['10.244.1.20', '10.244.2.5'] },
    { namespace: 'shop', service: 'frontend', portName: 'http', port: 8081, addresses: ['10.244.3.9'] },
    { namespace: 'shop', service: 'frontend', portName: 'https', port: 8443, addresses: ['10.244.2.5', '10.244.1.20'] },
    { namespace: 'shop', service: 'frontend', portName: 'metrics', port: 9090, addresses: ['10.244.1.20'] },
  ],
};

const NO_ENDPOINTS: KubeProxyInput = {
  podCidr: POD_CIDR,
  services: [
    {
      namespace: 'default',
      name: 'idle',
      clusterIP: '10.96.0.51',
      ports: [
        { name: 'tcp', port: 80, protocol: 'TCP', targetPort: 8080 },
        { name: 'udp', port: 53, protocol: 'UDP', targetPort: 5353 },
      ],
    },
  ],
  // A slice with no ready addresses is the same as none.
  endpoints: [{ namespace: 'default', service: 'idle', portName: 'tcp', port: 8080, addresses: [] }],
};

const CASES: Record<string, KubeProxyInput> = {
  'kube-proxy-empty.nft': { podCidr: POD_CIDR, services: [], endpoints: [] },
  'kube-proxy-one-service.nft': ONE_SERVICE,
  'kube-proxy-multi-port.nft': MULTI_PORT,
  'kube-proxy-no-endpoints.nft': NO_ENDPOINTS,
};

for (const [name, input] of Object.entries(CASES)) {
  test(`kube-proxy rules golden: ${name}`, () => {
    assertGolden(name, buildKubeProxyScript(input));
  });
}

test('kube-proxy rules: input order does not change a byte', () => {
  const all: KubeProxyInput = {
    podCidr: POD_CIDR,
    services: [...ONE_SERVICE.services, ...MULTI_PORT.services, ...NO_ENDPOINTS.services],
    endpoints: [...ONE_SERVICE.endpoints, ...MULTI_PORT.endpoints, ...NO_ENDPOINTS.endpoints],
  };
  const shuffled: KubeProxyInput = {
    podCidr: POD_CIDR,
    services: [...all.services].reverse().map((s) => ({ ...s, ports: [...s.ports].reverse() })),
    endpoints: [...all.endpoints].reverse().map((e) => ({ ...e, addresses: [...e.addresses].reverse() })),
  };
  const expected = buildKubeProxyScript(all);
  assert.equal(buildKubeProxyScript(shuffled), expected);
  assert.equal(buildKubeProxyScript(all), expected, 'a second build is identical');
  // Inputs are not mutated by the sorting.
  assert.deepEqual(all.services[0], ONE_SERVICE.services[0]);
});

test('kube-proxy rules: unnamed slice ports match by target port, named ones by name', () => {
  const script = buildKubeProxyScript({
    podCidr: POD_CIDR,
    services: [
      {
        namespace: 'a',
        name: 's',
        clusterIP: '10.96.0.9',
        ports: [
          { port: 80, protocol: 'TCP', targetPort: 8080 },
          { name: 'admin', port: 81, protocol: 'TCP', targetPort: 9000 },
        ],
      },
    ],
    endpoints: [
      { namespace: 'a', service: 's', port: 8080, addresses: ['10.244.1.2'] },
      // Named "other": matches no service port even though 9000 is a target port.
      { namespace: 'a', service: 's', portName: 'other', port: 9000, addresses: ['10.244.1.3'] },
      // Another namespace's service of the same name is not ours.
      { namespace: 'b', service: 's', port: 8080, addresses: ['10.244.1.4'] },
    ],
  });
  assert.match(script, /dnat to 10\.244\.1\.2:8080/);
  assert.doesNotMatch(script, /10\.244\.1\.[34]/);
  assert.match(script, /10\.96\.0\.9 \. tcp \. 81 : goto reject-chain/);
});

test('kube-proxy rules: invalid entries are skipped, a bad pod CIDR is refused', () => {
  const script = buildKubeProxyScript({
    podCidr: POD_CIDR,
    services: [
      { namespace: 'a', name: 'headless', clusterIP: 'None', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] },
      { namespace: 'a', name: 'v6', clusterIP: 'fd00::1', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] },
      { namespace: 'a', name: 'bad-port', clusterIP: '10.96.0.2', ports: [{ port: 0, protocol: 'TCP', targetPort: 80 }] },
      // Same ClusterIP/protocol/port twice: the first (by namespace/name) wins, nft would refuse both.
      { namespace: 'a', name: 'dup-1', clusterIP: '10.96.0.3', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] },
      { namespace: 'a', name: 'dup-2', clusterIP: '10.96.0.3', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] },
    ],
    endpoints: [
      { namespace: 'a', service: 'dup-1', port: 80, addresses: ['10.244.1.5', 'fd00::5', '10.244.1.5', '10.244.1.5; flush ruleset'] },
      { namespace: 'a', service: 'dup-2', port: 80, addresses: ['10.244.1.6'] },
    ],
  });
  assert.doesNotMatch(script, /headless|v6|bad-port|dup-2|fd00|flush/);
  assert.equal(script.match(/dnat to 10\.244\.1\.5:80/g)?.length, 1, 'repeated addresses collapse');
  assert.throws(
    () => buildKubeProxyScript({ podCidr: '10.244.1.0', services: [], endpoints: [] }),
    (err: unknown) => err instanceof WarrenError && err.code === 'ERR_SIM_CONFIG',
  );
});

test('kube-proxy chain names: valid nft identifiers, stable, unique after sanitizing', () => {
  const a = kubeProxyChainName('svc', ['my.ns', 'web', 'tcp', 80]);
  const b = kubeProxyChainName('svc', ['my-ns', 'web', 'tcp', 80]);
  const long = kubeProxyChainName('ep', ['n'.repeat(63), 's'.repeat(63), 'tcp', 80, '10.244.1.5:8080']);
  for (const name of [a, b, long]) assert.match(name, /^(svc|ep)-[a-z0-9]+(-[a-z0-9]+)*$/);
  assert.notEqual(a, b);
  assert.equal(a, kubeProxyChainName('svc', ['my.ns', 'web', 'tcp', 80]));
  assert.ok(long.length <= 60, `${long} stays short`);
});

test('kube-proxy removal script deletes only its own table, idempotently', () => {
  assert.equal(removeKubeProxyScript(), 'add table ip wrn-kube-proxy\ndelete table ip wrn-kube-proxy\n');
  assert.ok(buildKubeProxyScript(ONE_SERVICE).startsWith(removeKubeProxyScript()), 'apply starts by replacing the table');
});

interface Call {
  file: string;
  args: string[];
  options: RunOptions | undefined;
}

function recordingRunner(answers: Record<string, string> = {}): { runner: CommandRunner; calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    runner: {
      async run(file, args, options) {
        calls.push({ file, args, options });
        return answers[`${file} ${args.join(' ')}`] ?? '';
      },
    },
  };
}

test('kube-proxy apply: one `nft -f -` in the node netns with the script on stdin', async () => {
  const { runner, calls } = recordingRunner();
  const netns = '/var/run/netns/wrn-node-1';
  const applied = await applyKubeProxyRules(runner, netns, ONE_SERVICE);
  await applyKubeProxyRules(runner, netns, ONE_SERVICE);
  await removeKubeProxyRules(runner, netns);
  assert.equal(applied, buildKubeProxyScript(ONE_SERVICE));
  assert.deepEqual(calls, [
    { file: 'nft', args: ['-f', '-'], options: { netns, input: applied } },
    { file: 'nft', args: ['-f', '-'], options: { netns, input: applied } },
    { file: 'nft', args: ['-f', '-'], options: { netns, input: removeKubeProxyScript() } },
  ]);
});

test('kube-proxy list: undefined when the table is absent, its listing otherwise', async () => {
  const netns = '/var/run/netns/wrn-node-1';
  const absent = recordingRunner({ 'nft list tables ip': 'table ip other\ntable ip wrn-kube-proxy-old' });
  assert.equal(await listKubeProxyTable(absent.runner, netns), undefined);
  assert.equal(absent.calls.length, 1);
  const present = recordingRunner({
    'nft list tables ip': 'table ip other\ntable ip wrn-kube-proxy',
    'nft list table ip wrn-kube-proxy': 'table ip wrn-kube-proxy {\n}',
  });
  assert.equal(await listKubeProxyTable(present.runner, netns), 'table ip wrn-kube-proxy {\n}');
  assert.deepEqual(present.calls[1], { file: 'nft', args: ['list', 'table', 'ip', 'wrn-kube-proxy'], options: { netns } });
});
