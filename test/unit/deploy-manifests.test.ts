import assert from 'node:assert/strict';
import { exec, kubectlOrSkip } from '../helpers/kubectl.js';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ApiException,
  KubernetesObjectApi,
  dumpYaml,
  loadYaml,
  type KubernetesObject,
  type V1Container,
  type V1DaemonSet,
  type V1Deployment,
  type V1PodSpec,
  type V1PolicyRule,
  type V1RoleBinding,
  type V1Service,
} from '@kubernetes/client-node';
import { ENV, loadNodeAgentConfig, type NodeAgentConfig } from '../../src/agent/config.js';
import { parseCaArgs } from '../../src/cli/ca.js';
import { parseNodeArgs } from '../../src/cli/node.js';
import { CA_ENV, loadCaConfig, type CaConfig } from '../../src/ca/config.js';
import { CA_SECRET } from '../../src/ca/root-store.js';
import { PROXY_NODE_OPTIONS } from '../../src/config/proxy-node-options.js';
import { CA_TOKEN_AUDIENCE } from '../../src/identity/ca-client.js';
import { BUNDLE_CONFIGMAP } from '../../src/identity/trust-bundle.js';
import { DEFAULT_NETNS_DIR, DEFAULT_PROC_ROOT } from '../../src/k8s/netns-discovery.js';
import { crdManifests } from '../../src/policy/crd-manifests.js';
import { startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

// dist/test/unit → the source tree's deploy/
const ROOT = new URL('../../../', import.meta.url).pathname;
const DEPLOY = join(ROOT, 'deploy');

/** The manifests of deploy/ (relative paths); deploy/uninstall/ is applied on its own, to remove warren. */
function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return relative(DEPLOY, path) === 'uninstall' ? [] : yamlFiles(path);
    return e.name.endsWith('.yaml') ? [relative(DEPLOY, path)] : [];
  });
}

interface Doc {
  file: string;
  text: string;
  obj: KubernetesObject;
}

/**
 * What `kubectl apply -k deploy/` installs: every document of every file the kustomization
 * lists. It is named `Kustomization` (a name kustomize reads) so that `kubectl apply -f
 * deploy/`, which reads only .yaml/.yml/.json files, does not send it as an object.
 */
const installed = loadYaml<{ resources: string[] }>(readFileSync(join(DEPLOY, 'Kustomization'), 'utf8')).resources;
const docs: Doc[] = installed.flatMap((file) =>
  readFileSync(join(DEPLOY, file), 'utf8')
    .split(/^---$/m)
    .filter((text) => /^\s*kind:/m.test(text))
    .map((text) => ({ file, text, obj: loadYaml<KubernetesObject>(text) })),
);

function find<T>(kind: string, name: string): T {
  const matches = docs.filter((d) => d.obj.kind === kind && d.obj.metadata?.name === name);
  assert.equal(matches.length, 1, `deploy/ should hold exactly one ${kind} ${name}`);
  return matches[0]!.obj as T;
}

const agent = find<V1DaemonSet>('DaemonSet', 'warren-node');
const ca = find<V1Deployment>('Deployment', 'warren-ca');
const caService = find<V1Service>('Service', 'warren-ca');
const agentPod = agent.spec!.template.spec!;
const caPod = ca.spec!.template.spec!;
const agentContainer = agentPod.containers[0]!;
const caContainer = caPod.containers[0]!;
const NODE = 'node-a';

/** A CPU quantity in cores: "2", "1500m". */
function cpuCores(quantity: string): number {
  const m = /^(\d+)(m?)$/.exec(quantity);
  assert.ok(m !== null, `CPU quantity ${quantity}`);
  return m[2] === 'm' ? Number(m[1]) / 1000 : Number(m[1]);
}

/** The container's environment as the kubelet would fill it in on node-a (downward API included). */
function containerEnv(c: V1Container, namespace: string, known: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of c.env ?? []) {
    // A misspelled name would be ignored by the loader and the default used instead.
    assert.ok(known.includes(e.name), `env ${e.name} is not one the process reads (${known.join(', ')})`);
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const resource = e.valueFrom?.resourceFieldRef;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (field === 'spec.nodeName') env[e.name] = NODE;
    else if (field === 'metadata.namespace') env[e.name] = namespace;
    // The kubelet divides by the divisor and rounds up (a limit of 1500m with divisor 1 gives "2").
    else if (resource?.resource === 'limits.cpu' && String(resource.divisor ?? '1') === '1') env[e.name] = String(Math.ceil(cpuCores(String(c.resources?.limits?.cpu))));
    else assert.fail(`env ${e.name}: unexpected source ${JSON.stringify(e.valueFrom)}`);
  }
  return env;
}

function agentConfig(): NodeAgentConfig {
  assert.equal(agentContainer.args?.[0], 'node');
  assert.equal(agentContainer.command, undefined, 'the image ENTRYPOINT (bin/warren) runs the command given in args');
  const { flags } = parseNodeArgs(agentContainer.args!.slice(1));
  return loadNodeAgentConfig(flags, containerEnv(agentContainer, agent.metadata!.namespace!, [...Object.values(ENV), 'NODE_OPTIONS']));
}

function caConfig(): CaConfig {
  assert.equal(caContainer.args?.[0], 'ca');
  assert.equal(caContainer.command, undefined);
  const { flags } = parseCaArgs(caContainer.args!.slice(1));
  return loadCaConfig(flags, containerEnv(caContainer, ca.metadata!.namespace!, Object.values(CA_ENV)));
}

const portOf = (hostPort: string): number => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));

/** The volume mounted exactly at `path` in `c`, with its mount. */
function mountAt(pod: V1PodSpec, c: V1Container, path: string) {
  const mount = c.volumeMounts?.find((m) => m.mountPath === path);
  assert.ok(mount, `nothing is mounted at ${path}`);
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  assert.ok(volume, `volume ${mount.name} is not defined`);
  return { mount, volume };
}

test('the CRD manifests in deploy/ are what src/policy/crds.ts generates (npm run gen:crds rewrites them)', () => {
  const generated = crdManifests();
  assert.deepEqual(readdirSync(DEPLOY).filter((f) => f.includes('-crd-')).sort(), generated.map((g) => g.file).sort());
  for (const { file, text } of generated) {
    assert.equal(readFileSync(join(DEPLOY, file), 'utf8'), text, `deploy/${file} is stale: run npm run gen:crds`);
  }
});

test('the Kustomization lists every manifest under deploy/, in the order `kubectl apply -f deploy/` applies them', () => {
  assert.deepEqual([...installed], yamlFiles(DEPLOY).sort());
  assert.deepEqual(yamlFiles(DEPLOY), yamlFiles(DEPLOY).filter((f) => !f.includes('/')), 'no manifest in a subdirectory (apply -f does not recurse)');
});

test('deploy/daemonset.yaml holds the agent: its DaemonSet, its ServiceAccount and the RBAC bound to that account', () => {
  const inFile = docs.filter((d) => d.file === 'daemonset.yaml').map((d) => d.obj);
  assert.deepEqual(inFile.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Role', 'RoleBinding', 'ServiceAccount']);
  assert.ok(inFile.includes(agent), 'the agent DaemonSet warren-node is in deploy/daemonset.yaml');
  const account = agent.spec!.template.spec!.serviceAccountName;
  assert.ok(inFile.some((o) => o.kind === 'ServiceAccount' && o.metadata?.name === account), `its ServiceAccount ${account}`);
  for (const binding of inFile.filter((o) => o.kind!.endsWith('Binding')) as V1RoleBinding[]) {
    assert.deepEqual(binding.subjects?.map((s) => `${s.kind}/${s.namespace}/${s.name}`), [`ServiceAccount/${agent.metadata!.namespace}/${account}`], `${binding.kind} ${binding.metadata?.name}`);
    assert.ok(inFile.some((o) => o.kind === binding.roleRef.kind && o.metadata?.name === binding.roleRef.name), `${binding.kind} ${binding.metadata?.name} binds a role of the same file`);
  }
  assert.ok(installed.indexOf('00-namespace.yaml') < installed.indexOf('daemonset.yaml'), 'the namespace is applied first');
});

test('every field written in deploy/ is one the Kubernetes API types know (a typo would be dropped silently)', () => {
  // Keys are read from the text and from the object after client-node's typed models have
  // loaded and serialized it: a misspelled field (mountPropogation) does not survive that.
  const keys = (text: string): Set<string> => new Set([...text.matchAll(/^[ \t]*(?:-[ \t]+)*["']?([^\s"'#:-][^"':\n]*?)["']?:(?:\s|$)/gm)].map((m) => m[1]!));
  for (const doc of docs) {
    const known = keys(dumpYaml(doc.obj));
    const unknown = [...keys(doc.text)].filter((k) => !known.has(k));
    assert.deepEqual(unknown, [], `${doc.file}: ${doc.obj.kind} ${doc.obj.metadata?.name} has fields the API does not define`);
  }
});

test('every container runs the same image, tagged with the package version', () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const c of [...agentPod.containers, ...(agentPod.initContainers ?? []), ...caPod.containers]) {
    assert.equal(c.image, `ghcr.io/warren-mesh/warren:${version}`, c.name);
  }
});

test("the DaemonSet's args and env are a configuration warren node accepts", () => {
  const config = agentConfig();
  assert.equal(config.nodeName, NODE);
  assert.equal(config.systemNamespace, agent.metadata!.namespace);
  assert.ok(config.excludeNamespaces.includes(ca.metadata!.namespace!), 'the CA namespace is excluded: CA pods never wait for an agent');
  assert.equal(config.installCni, true);
  assert.equal(agentPod.serviceAccountName, 'warren-node');
});

test("the DaemonSet runs the agent with the proxies' Node flags (src/config/proxy-node-options.ts), as the simulator does", () => {
  assert.equal(agentContainer.env?.find((e) => e.name === 'NODE_OPTIONS')?.value, PROXY_NODE_OPTIONS);
});

test("the DaemonSet runs as many native data path threads as its CPU limit's cores, so they are never throttled and never fewer than it pays for", () => {
  const config = agentConfig();
  assert.equal(config.dataplane, 'native');
  assert.equal(config.dataplaneThreads, Math.ceil(cpuCores(String(agentContainer.resources?.limits?.cpu))));
});

test('the DaemonSet mounts every host path the agent configuration points at', () => {
  const config = agentConfig();
  const hostDir = (path: string, { samePath }: { samePath: boolean }) => {
    const { mount, volume } = mountAt(agentPod, agentContainer, path);
    assert.ok(volume.hostPath, `${path} must come from the host`);
    if (samePath) assert.equal(volume.hostPath.path, path, `${path}: the host sees this path too, so it must be the same there`);
    return { mount, volume };
  };
  for (const dir of [config.cniConfDir, config.cniBinDir]) assert.notEqual(hostDir(dir, { samePath: false }).mount.readOnly, true, `${dir} is written`);
  // The plugin, run by the runtime on the host, dials the socket path the agent wrote into its conf.
  assert.notEqual(hostDir(dirname(config.cniSocket), { samePath: true }).mount.readOnly, true);
  hostDir(config.stateDir, { samePath: true });
  // Pod netns pinned after the agent started must appear in its view.
  assert.equal(hostDir(DEFAULT_NETNS_DIR, { samePath: true }).mount.mountPropagation, 'HostToContainer');
  // Netns discovery scans DEFAULT_PROC_ROOT (/proc): the host's processes are there only with hostPID.
  assert.equal(DEFAULT_PROC_ROOT, '/proc');
  assert.equal(agentPod.hostPID, true);
  assert.equal(agentPod.hostNetwork, true);
  assert.equal(agentPod.dnsPolicy, 'ClusterFirstWithHostNet', 'the CA address is a cluster DNS name');

  const token = mountAt(agentPod, agentContainer, dirname(config.caTokenFile));
  const projection = token.volume.projected?.sources?.find((s) => s.serviceAccountToken?.path === basename(config.caTokenFile))?.serviceAccountToken;
  assert.ok(projection, `${config.caTokenFile} must be a projected service account token`);
  // src/ca/server.ts reviews the token for this audience only.
  assert.equal(projection.audience, CA_TOKEN_AUDIENCE);

  // deploy/README.md's kustomize patches for other CNI paths address these by index.
  assert.deepEqual(agentPod.volumes?.slice(0, 2).map((v) => v.name), ['cni-conf-dir', 'cni-bin-dir']);
  assert.deepEqual(agentContainer.volumeMounts?.slice(0, 2).map((m) => m.mountPath), [config.cniConfDir, config.cniBinDir]);
  assert.equal(agentPod.containers.length, 1);

  const mounted = new Set(agentContainer.volumeMounts?.map((m) => m.name));
  assert.deepEqual(agentPod.volumes?.map((v) => v.name).filter((n) => !mounted.has(n)), [], 'every volume is mounted');
});

test("the agent's ports, probe, shutdown and scheduling match its configuration", () => {
  const config = agentConfig();
  const probe = agentContainer.readinessProbe?.httpGet;
  assert.equal(probe?.path, '/healthz/ready');
  assert.equal(probe?.port, portOf(config.readinessAddress));
  assert.ok(config.readinessAddress.startsWith('0.0.0.0:'), 'the kubelet probes the node IP');
  // declared ports would be host ports (hostNetwork), which block the surge pod of a rolling update
  assert.equal(agentContainer.ports, undefined);
  assert.ok(config.adminAddress.startsWith('127.0.0.1:'), 'the admin API stays on the node loopback');
  const annotations = agent.spec!.template.metadata!.annotations!;
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(annotations['prometheus.io/port'], String(portOf(config.metricsAddress)));

  assert.ok(agentPod.terminationGracePeriodSeconds! > config.drainSeconds, 'the drain must finish before SIGKILL');
  // a rolling update surges: the new agent takes over before the old one stops (listener hand-off)
  assert.equal(agent.spec!.updateStrategy?.rollingUpdate?.maxUnavailable, 0);
  assert.equal(agent.spec!.updateStrategy?.rollingUpdate?.maxSurge, 1);
  assert.equal(agentPod.priorityClassName, 'system-node-critical');
  assert.ok(agentPod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined), 'tolerates every taint');

  const security = agentContainer.securityContext!;
  assert.notEqual(security.privileged, true);
  assert.deepEqual(security.capabilities?.drop, ['ALL']);
  assert.deepEqual([...(security.capabilities?.add ?? [])].sort(), ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE']);
});

test('the CA Deployment runs warren ca behind the Service the agents dial', () => {
  const config = caConfig();
  const agentCfg = agentConfig();
  assert.equal(config.namespace, ca.metadata!.namespace);
  // The agents' CA address names this Service, on its port.
  const url = new URL(agentCfg.caAddress);
  assert.equal(url.hostname, `${caService.metadata!.name}.${caService.metadata!.namespace}.svc`);
  const servicePort = caService.spec!.ports!.find((p) => p.port === Number(url.port));
  assert.ok(servicePort, `Service warren-ca has no port ${url.port}`);
  const target = caContainer.ports?.find((p) => p.name === servicePort.targetPort || p.containerPort === servicePort.targetPort);
  assert.equal(target?.containerPort, portOf(config.listen));
  for (const [k, v] of Object.entries(caService.spec!.selector!)) assert.equal(ca.spec!.template.metadata!.labels![k], v, `selector ${k}`);
  for (const probe of [caContainer.readinessProbe, caContainer.livenessProbe]) {
    assert.equal(probe?.httpGet?.scheme, 'HTTPS');
    assert.equal(probe?.httpGet?.path, '/healthz');
    assert.equal(probe?.httpGet?.port, portOf(config.listen));
  }
  // The agents' service account is one the CA answers.
  assert.ok(config.allowedCallers.includes(`system:serviceaccount:${agent.metadata!.namespace}:${agentPod.serviceAccountName}`));
  assert.equal(caPod.serviceAccountName, 'warren-ca');
});

/** Every (scope, group/resource, verb, name) a service account is granted by the manifests' bindings. */
function grants(namespace: string, serviceAccount: string): string[] {
  const out: string[] = [];
  for (const d of docs.filter((x) => x.obj.kind === 'ClusterRoleBinding' || x.obj.kind === 'RoleBinding')) {
    const binding = d.obj as V1RoleBinding;
    if (!binding.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === serviceAccount && s.namespace === namespace)) continue;
    const role = find<{ rules: V1PolicyRule[] }>(binding.roleRef.kind, binding.roleRef.name);
    const scope = binding.kind === 'RoleBinding' ? binding.metadata!.namespace! : 'cluster';
    for (const rule of role.rules) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs]) assert.ok(!field?.includes('*'), `${binding.roleRef.name}: no wildcards`);
      assert.equal(rule.nonResourceURLs, undefined);
      for (const group of rule.apiGroups ?? [])
        for (const resource of rule.resources ?? [])
          for (const verb of rule.verbs)
            for (const name of rule.resourceNames ?? [undefined]) out.push(`${scope} ${group || 'core'}/${resource} ${verb}${name ? ` name=${name}` : ''}`);
    }
  }
  return out.sort();
}

test('warren-node is granted exactly the API calls the agent makes', () => {
  const expected = [
    // node-agent.ts: its node's pods (list/watch by spec.nodeName), readPod on CNI ADD,
    // the warren.io/redirection annotations; cluster-state.ts: every pod (list/watch).
    'cluster core/pods get',
    'cluster core/pods list',
    'cluster core/pods watch',
    'cluster core/pods patch',
    // node-agent.ts: namespace labels (informer; readNamespace on CNI ADD).
    'cluster core/namespaces get',
    'cluster core/namespaces list',
    'cluster core/namespaces watch',
    // cluster-state.ts: Service VIPs and their endpoints.
    'cluster core/services list',
    'cluster core/services watch',
    'cluster discovery.k8s.io/endpointslices list',
    'cluster discovery.k8s.io/endpointslices watch',
    // cluster-state.ts: waypoint Gateways (which Services and workloads use which waypoint).
    'cluster gateway.networking.k8s.io/gateways list',
    'cluster gateway.networking.k8s.io/gateways watch',
    // policy-state.ts: the policies (list/watch) and their status (patchNamespacedCustomObjectStatus).
    'cluster security.warren.io/authorizationpolicies list',
    'cluster security.warren.io/authorizationpolicies watch',
    'cluster security.warren.io/peerauthentications list',
    'cluster security.warren.io/peerauthentications watch',
    'cluster security.warren.io/authorizationpolicies/status patch',
    'cluster security.warren.io/peerauthentications/status patch',
    // policy-state.ts: Warning Events for invalid policies and those needing a waypoint.
    'cluster core/events create',
    // trust-bundle-watch.ts: ConfigMap warren-ca-root in the system namespace, by field selector.
    `warren-system core/configmaps list name=${BUNDLE_CONFIGMAP}`,
    `warren-system core/configmaps watch name=${BUNDLE_CONFIGMAP}`,
  ];
  assert.equal(agentConfig().systemNamespace, 'warren-system');
  assert.deepEqual(grants(agent.metadata!.namespace!, agentPod.serviceAccountName!), expected.sort());
});

test('warren-ca is granted exactly the API calls the CA makes', () => {
  const expected = [
    // src/ca/server.ts: TokenReview of the caller's token.
    'cluster authentication.k8s.io/tokenreviews create',
    // src/ca/server.ts: pods (informer, and a live list by spec.nodeName).
    'cluster core/pods list',
    'cluster core/pods watch',
    // src/ca/trust-bundle-publisher.ts: namespaces, and the bundle ConfigMap in each (list/watch by
    // field selector, create where missing, replace where drifted).
    'cluster core/namespaces list',
    'cluster core/namespaces watch',
    `cluster core/configmaps list name=${BUNDLE_CONFIGMAP}`,
    `cluster core/configmaps watch name=${BUNDLE_CONFIGMAP}`,
    `cluster core/configmaps update name=${BUNDLE_CONFIGMAP}`,
    'cluster core/configmaps create',
    // src/ca/root-store.ts: the root in Secret warren-ca of the CA's namespace (read, create once).
    `warren-system core/secrets get name=${CA_SECRET}`,
    'warren-system core/secrets create',
    // src/gateway/waypoint-controller.ts: Gateways of class warren-waypoint (watch, status), the
    // class itself (made when missing, status), what runs each waypoint, Services and Namespaces
    // (their use-waypoint labels), Warning Events.
    'cluster gateway.networking.k8s.io/gateways list',
    'cluster gateway.networking.k8s.io/gateways watch',
    'cluster gateway.networking.k8s.io/gateways/status patch',
    'cluster gateway.networking.k8s.io/gatewayclasses get',
    'cluster gateway.networking.k8s.io/gatewayclasses create',
    'cluster gateway.networking.k8s.io/gatewayclasses/status patch',
    'cluster apps/deployments list',
    'cluster apps/deployments watch',
    'cluster apps/deployments create',
    'cluster apps/deployments update',
    'cluster apps/deployments delete',
    'cluster core/services list',
    'cluster core/services watch',
    'cluster core/services create',
    'cluster core/services update',
    'cluster core/serviceaccounts get',
    'cluster core/serviceaccounts create',
    'cluster core/serviceaccounts update',
    'cluster core/events create',
    // waypoint-controller.ts: a Gateway's parametersRef ConfigMap (its replicas), and its PodDisruptionBudget above one replica.
    'cluster core/configmaps get',
    'cluster policy/poddisruptionbudgets get',
    'cluster policy/poddisruptionbudgets create',
    'cluster policy/poddisruptionbudgets update',
    'cluster policy/poddisruptionbudgets delete',
    // ...and a ClusterRoleBinding of ClusterRole warren-waypoint per waypoint ServiceAccount.
    'cluster rbac.authorization.k8s.io/clusterrolebindings list',
    'cluster rbac.authorization.k8s.io/clusterrolebindings create',
    'cluster rbac.authorization.k8s.io/clusterrolebindings update',
    'cluster rbac.authorization.k8s.io/clusterrolebindings delete',
    'cluster rbac.authorization.k8s.io/clusterroles bind name=warren-waypoint',
  ];
  assert.equal(caConfig().namespace, 'warren-system');
  assert.deepEqual(grants(ca.metadata!.namespace!, caPod.serviceAccountName!), expected.sort());
});

let api: TestApiServer;
before(async () => {
  api = await startTestApiServer();
});
after(async () => {
  await api.stop();
});

test('every object in deploy/ is accepted by an API server (CRDs first), and the CRDs validate custom resources', async () => {
  const client = KubernetesObjectApi.makeApiClient(api.kc);
  const rank = (o: KubernetesObject): number => (o.kind === 'CustomResourceDefinition' ? 0 : o.kind === 'Namespace' ? 1 : 2);
  for (const { file, obj } of [...docs].sort((a, b) => rank(a.obj) - rank(b.obj))) {
    try {
      await client.create(obj);
    } catch (err) {
      assert.fail(`${file}: ${obj.kind} ${obj.metadata?.name}: ${err instanceof ApiException ? `${err.code} ${JSON.stringify(err.body)}` : err}`);
    }
  }
  // An Istio example with its apiVersion changed is accepted; a value outside the schema is not.
  const policy = (action: string): KubernetesObject =>
    loadYaml(`apiVersion: security.warren.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-frontend-${action.toLowerCase()}, namespace: warren-system}
spec:
  selector: {matchLabels: {app: backend}}
  action: ${action}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {ports: ["8080"]}}]
`);
  await client.create(policy('ALLOW'));
  await client.create(loadYaml<KubernetesObject>(`apiVersion: security.warren.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: warren-system}
spec: {mtls: {mode: STRICT}, portLevelMtls: {"8080": {mode: PERMISSIVE}}}
`));
  await assert.rejects(client.create(policy('MAYBE')), (err: unknown) => err instanceof ApiException && err.code === 422);
});


test('kubectl installs deploy/ both ways the READMEs show: apply -k deploy/ and apply -f deploy/', async (t) => {
  const kubectl = await kubectlOrSkip(t);
  if (kubectl === undefined) return;
  for (const readme of [readFileSync(join(DEPLOY, 'README.md'), 'utf8'), readFileSync(join(ROOT, 'README.md'), 'utf8')]) {
    assert.ok(readme.includes('kubectl apply -f deploy/') && readme.includes('kubectl apply -k deploy/'), 'the README shows both install commands');
  }
  for (const args of [['-k', 'deploy/'], ['-f', 'deploy/']]) {
    const server = await startTestApiServer();
    try {
      const kubeconfig = `${server.dir}/kubeconfig`;
      await writeFile(kubeconfig, server.kubeconfigText);
      const k = async (...rest: string[]): Promise<string> => (await exec(kubectl, ['--kubeconfig', kubeconfig, ...rest], { cwd: ROOT })).stdout;
      const out = await k('apply', ...args);
      for (const d of docs) {
        const line = new RegExp(`^${d.obj.kind!.toLowerCase()}(\\.[a-z0-9.]+)?/${d.obj.metadata!.name!.replace(/\./g, '\\.')} created$`, 'm');
        assert.match(out, line, `kubectl apply ${args.join(' ')}: ${d.obj.kind} ${d.obj.metadata!.name}`);
      }
      assert.equal(JSON.parse(await k('-n', 'warren-system', 'get', 'daemonset', 'warren-node', '-o', 'json')).spec.template.spec.hostPID, true);
    } finally {
      await server.stop();
    }
  }
});

test('deploy/uninstall/cleanup-daemonset.yaml runs `warren node --uninstall` with the agent\'s paths, from the same host paths, on every node', () => {
  const cleanup = loadYaml<V1DaemonSet>(readFileSync(join(DEPLOY, 'uninstall', 'cleanup-daemonset.yaml'), 'utf8'));
  const pod = cleanup.spec!.template.spec!;
  const init = pod.initContainers?.[0];
  assert.ok(init, 'the cleanup runs as an init container, so Ready means done');
  assert.deepEqual(init.command?.slice(0, 2), ['warren', 'node']);
  const { flags } = parseNodeArgs(init.command!.slice(2));
  const config = loadNodeAgentConfig(flags, containerEnv(init, cleanup.metadata!.namespace!, Object.values(ENV)));
  assert.equal(config.uninstall, true);
  const agentCfg = agentConfig();
  for (const key of ['cniConfDir', 'cniBinDir', 'cniSocket', 'stateDir'] as const) assert.equal(config[key], agentCfg[key], `${key}: what the agent wrote is what the cleanup removes`);
  // The same host directories as the agent's, whatever the container paths.
  const hostPathOf = (p: V1PodSpec, c: V1Container, path: string): string | undefined => mountAt(p, c, path).volume.hostPath?.path;
  for (const dir of [config.cniConfDir, config.cniBinDir, dirname(config.cniSocket), DEFAULT_NETNS_DIR]) {
    assert.equal(hostPathOf(pod, init, dir), hostPathOf(agentPod, agentContainer, dir), dir);
  }
  assert.equal(mountAt(pod, init, DEFAULT_NETNS_DIR).mount.mountPropagation, 'HostToContainer');
  assert.equal(pod.hostPID, true, 'pod netns are found through /proc');
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.serviceAccountName, 'warren-node', 'it lists the node\'s pods and removes their annotations, as the agent does');
  assert.deepEqual(pod.tolerations?.map((t) => ({ ...t })), [{ operator: 'Exists' }], 'every node the agent ran on, tainted ones too');
  assert.equal(init.image, agentContainer.image);
  assert.equal(cleanup.metadata!.namespace, agent.metadata!.namespace);
});

test('every container warren installs asks for CPU and memory and has a memory limit (bench/results/agent-resources-2026-12-06.md)', () => {
  const workloads = docs.map((d) => d.obj).filter((o) => ['DaemonSet', 'Deployment', 'Job'].includes(o.kind!));
  assert.ok(workloads.length >= 2, 'the agent and the CA at least');
  for (const w of workloads) {
    const pod = (w as V1Deployment).spec!.template.spec!;
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const where = `${w.kind}/${w.metadata?.name} container ${c.name}`;
      assert.ok(c.resources?.requests?.cpu, `${where}: resources.requests.cpu`);
      assert.ok(c.resources?.requests?.memory, `${where}: resources.requests.memory`);
      assert.ok(c.resources?.limits?.memory, `${where}: resources.limits.memory (an unbounded agent could take the node's memory)`);
    }
  }
});
