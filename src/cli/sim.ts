import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { WarrenError } from '../errors/warren-error.js';
import { runApp } from '../sim/apps/run-app.js';
import { applyManifests } from '../sim/client/apply.js';
import { adminKubeConfig, findPod } from '../sim/client/cluster-client.js';
import { clusterDown, clusterStatus, clusterUp } from '../sim/cluster-lifecycle.js';
import { meshInstall, meshUninstall } from '../sim/mesh-lifecycle.js';
import { runDaemon } from '../sim/daemon.js';
import { runClusterDns } from '../sim/dns/run-cluster-dns.js';
import { containerLogPath } from '../sim/kubelet/kubelet.js';
import { parseLogLines } from '../sim/kubelet/container-log.js';
import { DEFAULT_STATE_DIR, readClusterFile, statePaths } from '../sim/state-dir.js';
import { planTopology, podNetnsName } from '../sim/topology/plan.js';
import { agentPaths } from '../sim/agent-supervisor.js';
import { AGENT_REVISION_ANNOTATION, AGENT_RUNNING_ANNOTATION, SYSTEM_NAMESPACE, agentPodName } from '../sim/warren-system.js';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';

const HELP = `Usage: warren sim <command> [--state-dir DIR]

A Kubernetes cluster simulated on this machine (root): network namespaces for
nodes and pods, the real CNI plugins, an embedded API server, controllers,
kubelets, kube-proxy and DNS. State lives in --state-dir (default ${DEFAULT_STATE_DIR}).

Commands:
  up [--nodes N]            create the cluster (default 2 nodes) and print its kubeconfig
  down                      remove every netns, process, rule and file the cluster made
  status                    what exists: control plane, nodes, netns, pods
  apply -f FILE             create or update the objects in a YAML/JSON manifest
  kubectl ARGS…             run kubectl against the cluster
  exec NS/POD -- CMD…       run a command in a pod's network namespace
  logs NS/POD [-c NAME]     print a container's output (node/NAME: that node's warren agent; ca: warren ca)
  mesh uninstall|install    take warren off the cluster as an operator would, or put it back
  upgrade-agent NODE        replace NODE's agent as a DaemonSet rolling update (maxSurge: 1) does
  app NAME                  run a built-in container stand-in (http-echo, tcp-echo, sleep)
  serve                     the control plane process (started by up)
  dns --kubeconfig FILE     cluster DNS (started by serve in the underlay netns)`;

const stateDirOption = { 'state-dir': { type: 'string' as const, default: process.env.WARREN_SIM_STATE_DIR ?? DEFAULT_STATE_DIR } };

type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>, allowPositionals = false): Parsed {
  try {
    return parseArgs({ args: argv, options: { ...stateDirOption, help: { type: 'boolean', short: 'h', default: false }, ...options }, allowPositionals, strict: true });
  } catch (err) {
    throw new WarrenError('ERR_USAGE', (err as Error).message);
  }
}

const say = (line: string): void => console.log(`warren sim: ${line}`);

async function up(argv: string[]): Promise<number> {
  const { values } = parse(argv, { nodes: { type: 'string', default: '2' }, 'api-port': { type: 'string' } });
  if (values.help) return help('up [--nodes N] [--api-port PORT] [--state-dir DIR]', 'Creates a simulated cluster with N nodes (1-200).');
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 200) throw new WarrenError('ERR_USAGE', `--nodes must be 1-200, got ${String(values.nodes)}`);
  const stateDir = String(values['state-dir']);
  const started = Date.now();
  await clusterUp({ stateDir, nodes, ...(values['api-port'] ? { hostApiPort: Number(values['api-port']) } : {}), progress: say });
  const kc = adminKubeConfig(stateDir);
  const deadline = Date.now() + 30_000;
  let ready = 0;
  while (Date.now() < deadline) {
    const list = await kc.core.listNode();
    ready = list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    if (ready === nodes) break;
    await sleep(200);
  }
  const paths = statePaths(stateDir);
  say(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${ready}/${nodes} nodes Ready`);
  console.log(`
kubeconfig: ${paths.kubeconfig}
  export KUBECONFIG=${paths.kubeconfig}; kubectl get nodes
  or: warren sim kubectl get pods -A
inside the cluster the API server is https://10.255.0.1:6443 (${paths.clusterKubeconfig})
stop and remove everything: warren sim down`);
  return 0;
}

async function down(argv: string[]): Promise<number> {
  const { values } = parse(argv, {});
  if (values.help) return help('down [--state-dir DIR]', 'Stops the cluster and removes every netns, process, rule and file it made.');
  await clusterDown(String(values['state-dir']), say);
  say('nothing left');
  return 0;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parse(argv, {});
  if (values.help) return help('status [--state-dir DIR]', 'Shows what the simulated cluster has on this machine.');
  const stateDir = String(values['state-dir']);
  const s = await clusterStatus(stateDir);
  if (s.daemonPid === undefined && s.netns.length === 0 && !s.stateDirExists) {
    console.log('no simulated cluster: no control plane process, no wrn-* network namespaces, no state dir');
    return 0;
  }
  console.log(`state dir:      ${stateDir}${s.stateDirExists ? '' : ' (absent)'}`);
  console.log(`control plane:  ${s.daemonPid === undefined ? 'not running' : `running (pid ${s.daemonPid})`}`);
  console.log(`network:        ${s.netns.length} netns (${s.netns.filter((n) => n.split('-').length <= 3).join(', ') || 'none'})`);
  if (s.daemonPid !== undefined) {
    const kc = adminKubeConfig(stateDir);
    const pods = await kc.core.listPodForAllNamespaces();
    const running = pods.items.filter((p) => p.status?.phase === 'Running').length;
    console.log(`nodes:          ${s.nodes?.join(', ') ?? '?'}`);
    console.log(`pods:           ${pods.items.length} (${running} running)`);
  }
  return 0;
}

async function apply(argv: string[]): Promise<number> {
  const { values } = parse(argv, { filename: { type: 'string', short: 'f' } });
  if (values.help || values.filename === undefined) return help('apply -f FILE [--state-dir DIR]', 'Creates or updates (merge patch) every object in FILE (YAML or JSON, - for stdin).', !values.help);
  const file = String(values.filename);
  const text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  for (const line of await applyManifests(adminKubeConfig(String(values['state-dir'])), text)) console.log(line);
  return 0;
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function passthrough(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit' });
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new WarrenError('ERR_SIM_PREREQ', `${file} is not installed (./scripts/install-deps.sh installs it)`) : err),
    );
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Splits `--state-dir X` off the front; everything else belongs to the wrapped command. */
function leadingStateDir(argv: string[]): { stateDir: string; rest: string[] } {
  if (argv[0] === '--state-dir' && argv[1] !== undefined) return { stateDir: argv[1], rest: argv.slice(2) };
  if (argv[0]?.startsWith('--state-dir=')) return { stateDir: argv[0].slice('--state-dir='.length), rest: argv.slice(1) };
  return { stateDir: stateDirOption['state-dir'].default, rest: argv };
}

async function kubectl(argv: string[]): Promise<number> {
  const { stateDir, rest } = leadingStateDir(argv);
  return passthrough('kubectl', ['--kubeconfig', statePaths(stateDir).kubeconfig, ...rest]);
}

function podRef(text: string | undefined): { namespace: string; name: string } {
  const m = /^(?:([a-z0-9-]+)\/)?([a-z0-9.-]+)$/.exec(text ?? '');
  if (!m) throw new WarrenError('ERR_USAGE', `expected NAMESPACE/POD, got ${JSON.stringify(text ?? '')}`);
  return { namespace: m[1] ?? 'default', name: m[2]! };
}

async function exec(argv: string[]): Promise<number> {
  const { stateDir, rest } = leadingStateDir(argv);
  const dash = rest.indexOf('--');
  if (dash !== 1 || rest.length < 3) return help('exec [--state-dir DIR] NS/POD -- CMD [ARGS…]', "Runs CMD in the pod's network namespace.", true);
  const ref = podRef(rest[0]);
  const pod = await findPod(adminKubeConfig(stateDir), ref.namespace, ref.name);
  if (!pod.spec?.nodeName) throw new WarrenError('ERR_SIM_POD', `pod ${ref.namespace}/${ref.name} is not scheduled yet`);
  return passthrough('ip', ['netns', 'exec', podNetnsName(pod.spec.nodeName, ref.namespace, ref.name), ...rest.slice(2)]);
}

async function logs(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { container: { type: 'string', short: 'c' } }, true);
  if (values.help || positionals.length !== 1) return help('logs NS/POD [-c CONTAINER] [--state-dir DIR]', "Prints a container's stdout and stderr.", !values.help);
  const stateDir = String(values['state-dir']);
  if (positionals[0] === 'ca') {
    process.stdout.write(await readFile(statePaths(stateDir).caLog).catch(() => Buffer.from('')));
    return 0;
  }
  const ref = podRef(positionals[0]);
  if (ref.namespace === 'node') return printAgentLog(stateDir, ref.name);
  const pod = await findPod(adminKubeConfig(stateDir), ref.namespace, ref.name);
  const container = values.container === undefined ? pod.spec?.containers[0]?.name : String(values.container);
  if (container === undefined || !pod.spec?.containers.some((c) => c.name === container)) {
    throw new WarrenError('ERR_SIM_POD', `pod ${ref.namespace}/${ref.name} has no container ${JSON.stringify(container)}; it has: ${pod.spec?.containers.map((c) => c.name).join(', ')}`);
  }
  try {
    const lines = parseLogLines(await readFile(containerLogPath(stateDir, ref.namespace, ref.name, container), 'utf8'));
    process.stdout.write(lines.map((l) => `${l.text}\n`).join(''));
  } catch {
    throw new WarrenError('ERR_SIM_POD', `no logs yet for ${ref.namespace}/${ref.name} container ${container} (is it running?)`);
  }
  return 0;
}

/** `logs node/<name>`: the node agent's log, as `kubectl logs` of its DaemonSet pod would show. */
async function printAgentLog(stateDir: string, nodeName: string): Promise<number> {
  const cluster = readClusterFile(stateDir);
  if (cluster === undefined) throw new WarrenError('ERR_SIM_NOT_RUNNING', `no simulated cluster in ${stateDir}`);
  const node = planTopology(stateDir, cluster.nodes).nodes.find((n) => n.name === nodeName);
  if (node === undefined) throw new WarrenError('ERR_SIM_POD', `no node ${nodeName}; nodes: ${cluster.nodes.join(', ')}`);
  process.stdout.write(await readFile(agentPaths(node).log).catch(() => Buffer.from('')));
  return 0;
}

const MESH_HELP = `uninstall|install [--state-dir DIR]`;
const MESH_WHAT = `uninstall: takes warren off the cluster the way deploy/uninstall/README.md tells an
  operator to: deletes the agent and CA pods (their processes stop), runs
  \`warren node --uninstall\` with each node's agent flags in its netns (rules of
  every pod and of the node, CNI entry and plugin, socket, pod annotations),
  then deletes namespace warren-system (Secret warren-ca), the warren-ca-root
  ConfigMaps of every namespace, and the CRDs with every policy. Pods keep
  running; their traffic flows directly. \`warren sim down\` works as before.
install: creates warren's objects again (as \`kubectl apply -k deploy/\`) and waits
  until every node's agent is ready; labeled namespaces are enrolled again.`;

async function mesh(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {}, true);
  const action = positionals[0];
  if (values.help || positionals.length !== 1 || (action !== 'uninstall' && action !== 'install')) return help(`mesh ${MESH_HELP}`, MESH_WHAT, !values.help);
  const stateDir = String(values['state-dir']);
  const started = Date.now();
  await (action === 'uninstall' ? meshUninstall : meshInstall)(stateDir, say);
  say(`mesh ${action === 'uninstall' ? 'uninstalled: no warren rule, CNI entry, plugin, socket, annotation, Secret, ConfigMap or CRD left' : 'installed'} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return 0;
}

async function upgradeAgent(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {}, true);
  if (values.help || positionals.length !== 1) {
    return help('upgrade-agent [--state-dir DIR] NODE', "Replaces NODE's agent as a DaemonSet rolling update with maxSurge: 1 does: the new one starts, takes over the pods' listeners, then the old one gets SIGTERM and drains.", !values.help);
  }
  const { core } = adminKubeConfig(String(values['state-dir']));
  const name = agentPodName(positionals[0]!);
  const revision = String(Date.now());
  const started = Date.now();
  await core.patchNamespacedPod({ namespace: SYSTEM_NAMESPACE, name, body: { metadata: { annotations: { [AGENT_REVISION_ANNOTATION]: revision } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  // bounded: the new agent has 60 s to be ready, the old one 10 s to stop after its drain
  while (Date.now() - started < 120_000) {
    const pod = await core.readNamespacedPod({ namespace: SYSTEM_NAMESPACE, name });
    if (pod.metadata?.annotations?.[AGENT_RUNNING_ANNOTATION] === revision) {
      say(`agent of ${positionals[0]} upgraded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return 0;
    }
    await sleep(200);
  }
  throw new WarrenError('ERR_SIM_POD', `the agent of ${positionals[0]} was not replaced within 120 s (warren sim logs node/${positionals[0]})`);
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parse(argv, {});
  if (values.help) return help('serve [--state-dir DIR]', 'The control plane process; `warren sim up` starts it.');
  return runDaemon(String(values['state-dir']));
}

async function dns(argv: string[]): Promise<number> {
  const { values } = parse(argv, { kubeconfig: { type: 'string' }, address: { type: 'string', default: '10.255.0.1' }, port: { type: 'string', default: '53' } });
  if (values.help || values.kubeconfig === undefined) return help('dns --kubeconfig FILE [--address A] [--port P]', 'Serves cluster DNS from the API server (run in the underlay netns by `sim serve`).', !values.help);
  return runClusterDns(String(values.kubeconfig), String(values.address), Number(values.port));
}

function help(usage: string, what: string, isError = false): number {
  (isError ? console.error : console.log)(`Usage: warren sim ${usage}\n\n${what}`);
  return isError ? 2 : 0;
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = { up, down, status, apply, kubectl, exec, logs, mesh, 'upgrade-agent': upgradeAgent, serve, dns, app: runApp };

export async function runSim(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const run = sub === undefined ? undefined : SUBCOMMANDS[sub];
  if (run === undefined) {
    (sub === undefined || sub === '--help' || sub === '-h' ? console.log : console.error)(HELP);
    return sub === undefined || sub === '--help' || sub === '-h' ? 0 : 2;
  }
  return run(rest);
}
