import { writeFileSync, rmSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { WARREN_MAIN } from './warren-main.js';
import pino from 'pino';
import { systemRunner } from '../redirect/runner.js';
import { kubeconfig } from './apiserver/kubeconfig.js';
import { startApiServer } from './apiserver/server.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { superviseWarrenPods } from './mesh-supervisor.js';
import { superviseProcess } from './process-supervisor.js';
import { installWarrenSystem } from './warren-system.js';
import { startControllerManager } from './controllers/controller-manager.js';
import { Kubelet, containerLogPath } from './kubelet/kubelet.js';
import { startKubeProxySync } from './kube-proxy/sync.js';
import { readClusterFile, statePaths } from './state-dir.js';
import { UNDERLAY, planTopology, podNetnsName } from './topology/plan.js';
import { WarrenError } from '../errors/warren-error.js';


/**
 * The simulator's control plane process (`warren sim serve`, started by
 * `sim up`): the API server (in the underlay netns at 10.255.0.1:6443 and on
 * the host's loopback), the controllers, one kubelet and one kube-proxy per
 * node, warren installed (a `warren node` agent per node and `warren ca`,
 * running while their pods exist), and cluster DNS (a child process in the
 * underlay netns, a client of the API server as CoreDNS is). SIGTERM stops
 * the pods and exits.
 */
export async function runDaemon(stateDir: string): Promise<number> {
  const paths = statePaths(stateDir);
  const cluster = readClusterFile(stateDir);
  if (cluster === undefined) throw new WarrenError('ERR_SIM_STATE', `no cluster.json in ${stateDir}; start clusters with warren sim up`);
  const log = pino({ base: { component: 'warren-sim' } });
  const logFn = (msg: string, fields: Record<string, unknown>): void => log.info(fields, msg);
  const plan = planTopology(stateDir, cluster.nodes);
  writeFileSync(paths.pid, String(process.pid));

  const api = await startApiServer({
    dir: paths.apiserver,
    listen: [
      { address: UNDERLAY.address, port: UNDERLAY.apiServerPort, netns: `/var/run/netns/${UNDERLAY.netns}` },
      { address: '127.0.0.1', port: cluster.hostApiPort },
    ],
    advertise: { address: UNDERLAY.address, port: UNDERLAY.apiServerPort },
    log: logFn,
    // kubectl logs/exec: the kubelets' log files, commands run in the pod's netns as `warren sim exec` does.
    pods: {
      logPath: (namespace, pod, container) => containerLogPath(stateDir, namespace, pod, container),
      execArgv: (pod, command) => ['ip', 'netns', 'exec', podNetnsName(pod.spec.nodeName, pod.metadata.namespace, pod.metadata.name), ...command],
    },
  });
  writeFileAtomic(paths.kubeconfig, kubeconfig(`https://127.0.0.1:${cluster.hostApiPort}`, api.caCertPem, api.adminToken));
  writeFileAtomic(paths.clusterKubeconfig, kubeconfig(`https://${UNDERLAY.address}:${UNDERLAY.apiServerPort}`, api.caCertPem, api.adminToken));

  const controllers = startControllerManager(api.objects, logFn);
  const kubelets = plan.nodes.map((node) => new Kubelet(api.objects, node, systemRunner, stateDir, logFn));
  for (const k of kubelets) k.start();
  const proxies = plan.nodes.map((node) => startKubeProxySync(api.objects, node, systemRunner, logFn));
  const dns = superviseProcess({
    name: 'cluster DNS',
    command: 'ip',
    args: ['netns', 'exec', UNDERLAY.netns, process.execPath, WARREN_MAIN, 'sim', 'dns', '--kubeconfig', paths.clusterKubeconfig],
    restartDelayMs: 1000,
    log: logFn,
  });
  const kc = new KubeConfig();
  kc.loadFromFile(paths.kubeconfig);
  await installWarrenSystem(kc, plan.nodes);
  const mesh = superviseWarrenPods(api.objects, kc, plan.nodes, { clusterKubeconfig: paths.clusterKubeconfig, caLog: paths.caLog }, logFn);
  writeFileSync(paths.ready, new Date().toISOString());
  log.info({ nodes: cluster.nodes }, 'simulated cluster running');

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  log.info({}, 'stopping: pods, agents, CA, DNS, API server');
  controllers.stop();
  await dns.stop();
  await Promise.all(kubelets.map((k) => k.stop()));
  await mesh.stop();
  await Promise.all(proxies.map((p) => p.stop()));
  await api.close();
  rmSync(paths.ready, { force: true });
  rmSync(paths.pid, { force: true });
  return 0;
}
