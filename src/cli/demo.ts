import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { dataplaneName } from '../agent/config.js';
import { WarrenError } from '../errors/warren-error.js';
import { adminKubeConfig } from '../sim/client/cluster-client.js';
import { checkPrerequisites, clusterDown, clusterUp } from '../sim/cluster-lifecycle.js';
import { DEMO_NAMESPACE } from '../sim/demo/manifest.js';
import { removeDemoNamespace, runStory } from '../sim/demo/story.js';
import { DEFAULT_STATE_DIR, readClusterFile, runningDaemonPid } from '../sim/state-dir.js';
import { planTopology } from '../sim/topology/plan.js';

const HELP = `Usage: warren demo [--keep] [--dataplane node|native] [--state-dir DIR]

The mesh story in about a minute on the embedded simulator (as root; the
simulator's tools and tcpdump must be installed: ./scripts/demo.sh does that):
  - a two-node cluster, started unless one already runs from --state-dir
  - namespace ${DEMO_NAMESPACE}: a client and a web Deployment on different nodes, a second client
  - the client calls web: a capture between the nodes shows the request in clear
  - labeling the namespace enrolls the running pods: same processes, no restart
  - the same call is TLS on the wire (HBONE to :15008); the access log names
    both SPIFFE identities
  - an AuthorizationPolicy lets only the client in: the second client is reset,
    and \`warren policies explain\` says why
  - an excerpt of the agent's Istio metrics
  - an L7 waypoint for web: an HTTPRoute splits 100 requests 80/20 between two
    versions, an L7 AuthorizationPolicy lets the client GET but not DELETE (403),
    and \`warren policies explain --method DELETE\` says why
Then everything is removed (the cluster if the demo started it, else the
namespace ${DEMO_NAMESPACE}) unless --keep. Exit code 0 only if every step did what it says.

Options:
  --keep           leave the cluster and the demo running, and print what to try next
  --dataplane node|native
                   the agents' data path (\`warren node --dataplane\`) in the cluster the
                   demo starts ($WARREN_DATAPLANE; native); refused with a running cluster
  --state-dir DIR  simulator state ($WARREN_SIM_STATE_DIR; ${DEFAULT_STATE_DIR})`;

const step = (text: string): void => console.log(`\n▸ ${text}`);
const say = (line: string): void => console.log(line);

function nextCommands(stateDir: string, captureDir: string): string {
  const env = stateDir === DEFAULT_STATE_DIR ? '' : `  export WARREN_SIM_STATE_DIR=${stateDir}\n`;
  return `${env}  warren sim kubectl get pods -n ${DEMO_NAMESPACE} -o wide
  warren workloads                        # enrolled pods and their SPIFFE identities
  warren policies                         # the AuthorizationPolicy in force
  warren waypoint status -n ${DEMO_NAMESPACE} --kubeconfig ${stateDir}/kubeconfig   # the waypoint's conditions
  warren connections                      # captured connections and HBONE tunnels per pod
  warren sim logs node/node-2             # the agent's log; access log lines have "msg":"connection"
  warren sim exec ${DEMO_NAMESPACE}/client-b -- getent hosts web
  tcpdump -nn -A -r ${captureDir}/plaintext.pcap   # the captures (also mtls.pcap)
  warren sim down                         # removes everything`;
}

export async function runDemo(argv: string[]): Promise<number> {
  let values: { 'state-dir': string; keep: boolean; dataplane?: string; help: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'state-dir': { type: 'string', default: process.env.WARREN_SIM_STATE_DIR ?? DEFAULT_STATE_DIR },
        keep: { type: 'boolean', default: false },
        dataplane: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new WarrenError('ERR_USAGE', (err as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const dataplane = values.dataplane === undefined ? undefined : dataplaneFlag(values.dataplane);
  const started = Date.now();
  const stateDir = values['state-dir'];
  const captureDir = `${stateDir}/demo`;
  step('checking what the demo needs: root, iproute2, nftables, util-linux, the CNI plugins, tcpdump');
  await checkPrerequisites([['tcpdump', 'tcpdump'], ['getent', 'libc-bin']]);
  const ownCluster = runningDaemonPid(stateDir) === undefined;
  if (dataplane !== undefined && !ownCluster) {
    throw new WarrenError('ERR_USAGE', `--dataplane: the cluster running from ${stateDir} keeps its agents' data path; run \`warren sim down --state-dir ${stateDir}\` first, or drop --dataplane`);
  }
  if (ownCluster) {
    // The simulator's agents inherit WARREN_DATAPLANE (`warren node --dataplane`).
    if (dataplane !== undefined) process.env.WARREN_DATAPLANE = dataplane;
    step(`starting a simulated cluster with two nodes in ${stateDir}${process.env.WARREN_DATAPLANE === undefined ? '' : `, agents on --dataplane ${process.env.WARREN_DATAPLANE}`}`);
    await clusterUp({ stateDir, nodes: 2, progress: (l) => say(`  ${l}`) });
  } else {
    step(`using the simulated cluster running from ${stateDir}`);
  }

  // Runs once, on the normal path or on Ctrl-C, whichever comes first.
  let cleaning: Promise<void> | undefined;
  const cleanUp = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (values.keep) {
        step('the cluster keeps running (--keep); try:');
        say(nextCommands(stateDir, captureDir));
      } else if (ownCluster) {
        step('cleaning up: warren sim down');
        await clusterDown(stateDir, (l) => say(`  ${l}`));
      } else {
        step(`cleaning up: deleting namespace ${DEMO_NAMESPACE} (the cluster keeps running)`);
        await removeDemoNamespace(adminKubeConfig(stateDir));
        await rm(captureDir, { recursive: true, force: true });
        say(`  namespace ${DEMO_NAMESPACE} and the captures in ${captureDir} removed`);
      }
    })());
  const onInterrupt = (): void => {
    console.error('\nwarren demo: interrupted');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onInterrupt);

  let failure: unknown;
  try {
    const cluster = readClusterFile(stateDir);
    const plan = planTopology(stateDir, cluster?.nodes ?? []);
    const node = (name: string) => plan.nodes.find((n) => n.name === name) ?? fail(`the demo needs nodes node-1 and node-2; the cluster in ${stateDir} has ${cluster?.nodes.join(', ')}`);
    await runStory({ stateDir, client: adminKubeConfig(stateDir), nodes: { 'node-1': node('node-1'), 'node-2': node('node-2') }, captureDir, say });
    step(`every step did what it said (${Math.round((Date.now() - started) / 1000)} s)`);
  } catch (err) {
    failure = err;
  }
  try {
    await cleanUp();
  } catch (err) {
    // The story's failure is the one to report; a cleanup failure after it is secondary.
    if (failure === undefined) throw err;
    console.error(`warren demo: cleanup failed too: ${(err as Error).message}`);
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
  if (failure !== undefined) throw failure;
  return 0;
}

function dataplaneFlag(value: string): string {
  const parsed = dataplaneName.safeParse(value);
  if (!parsed.success) throw new WarrenError('ERR_USAGE', `--dataplane: ${JSON.stringify(value)} is not a data path; known: ${dataplaneName.options.join(', ')}`);
  return parsed.data;
}

function fail(message: string): never {
  throw new WarrenError('ERR_DEMO', message);
}
