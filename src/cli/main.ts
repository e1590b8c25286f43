import { WarrenError } from '../errors/warren-error.js';
import { warrenVersion } from './version.js';
import { INSPECT_SUMMARIES, runConnections, runPolicies, runServices, runWorkloads } from './inspect.js';

/**
 * Each command's module is imported when it runs: the node agent's and the waypoint's
 * processes then load none of the others' graphs (the CA's and the CLI's pull in
 * @kubernetes/client-node, ≥ 75 MiB RSS; docs/architecture.md §4).
 */

/**
 * The simulator's commands, imported on use: its module graph (API server, kubelet, demo)
 * stays out of every other command, the agent above all, and the agent image leaves it
 * out (docs/architecture.md §8).
 */
async function simulatorCommand<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new WarrenError('ERR_NO_SIMULATOR', `this installation has no simulator (the agent image leaves it out); run \`warren sim\` and \`warren demo\` from a checkout: ${(err as Error).message}`, { cause: err });
  }
}

interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  node: { summary: 'the per-node agent: CNI plugin installer, pod enrollment, proxy sockets in pods', run: async (args) => (await import('./node.js')).runNode(args) },
  ca: { summary: 'the workload certificate authority: signs SPIFFE certificates for node agents, publishes the trust bundle', run: async (args) => (await import('./ca.js')).runCaCommand(args) },
  status: { summary: 'one row per node agent: ready, redirection backend, enrolled pods, certificates, policies, connections', run: async (args) => (await import('./status.js')).runStatus(args) },
  certs: { summary: "a node agent's workload certificates: identities, serials, validity, chain, trust domain", run: async (args) => (await import('./certs.js')).runCerts(args) },
  workloads: { summary: INSPECT_SUMMARIES.workloads!, run: runWorkloads },
  services: { summary: INSPECT_SUMMARIES.services!, run: runServices },
  policies: { summary: INSPECT_SUMMARIES.policies!, run: runPolicies },
  connections: { summary: INSPECT_SUMMARIES.connections!, run: runConnections },
  'waypoint-proxy': { summary: 'the L7 waypoint process in a waypoint pod: PROXY v2 from its node agent, HTTP routing, L7 authorization, request metrics', run: async (args) => (await import('./waypoint-proxy.js')).runWaypointProxyCommand(args) },
  routes: { summary: "a waypoint's compiled route table (HTTPRoute/GRPCRoute matches in order, backends, filters)", run: async (args) => (await import('./routes.js')).runRoutes(args) },
  waypoint: { summary: 'L7 waypoints (Gateway API, class warren-waypoint): apply, list, status, delete', run: async (args) => (await import('./waypoint.js')).runWaypoint(args) },
  rules: { summary: 'print the redirection rules warren programs for a pod or node (nft or iptables)', run: async (args) => (await import('./rules.js')).runRules(args) },
  demo: { summary: 'a guided tour on the embedded simulator (starts a cluster if none runs)', run: async (args) => (await simulatorCommand(() => import('./demo.js'))).runDemo(args) },
  sim: { summary: 'a Kubernetes cluster simulated on this machine: up, down, status, apply, kubectl, exec, logs', run: async (args) => (await simulatorCommand(() => import('./sim.js'))).runSim(args) },
  version: {
    summary: 'print the version',
    run: async () => {
      console.log(`warren ${warrenVersion()} (node ${process.version})`);
      return 0;
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'warren: sidecar-less service mesh data plane for Kubernetes',
    '',
    'Usage: warren <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `warren <command> --help` for a command\'s options.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version' || name === '-v') return COMMANDS.version!.run([]);
  const command = COMMANDS[name];
  if (command === undefined) {
    console.error(`warren: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const code = (err as { code?: unknown }).code;
    if (err instanceof WarrenError) {
      console.error(`warren: ${err.message} [${err.code}]`);
      process.exitCode = err.code === 'ERR_USAGE' ? 2 : 1;
    } else if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      console.error(`warren: ${(err as Error).message} (see --help)`);
      process.exitCode = 2;
    } else {
      console.error(err);
      process.exitCode = 70;
    }
  },
);
