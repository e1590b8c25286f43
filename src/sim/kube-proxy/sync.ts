import type { ApiObjects } from '../apiserver/objects.js';
import type { CommandRunner } from '../../redirect/runner.js';
import type { NodePlan } from '../topology/plan.js';
import { applyKubeProxyRules, removeKubeProxyRules } from './apply.js';
import { buildKubeProxyScript } from './service-rules.js';
import { proxyInput } from './proxy-input.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

/**
 * One node's kube-proxy: rebuilds the service table whenever Services or
 * EndpointSlices change (bursts coalesce into one `nft -f`), and skips the
 * write when the script is what is already applied.
 */
export function startKubeProxySync(objects: ApiObjects, node: NodePlan, runner: CommandRunner, log: Log): { stop(): Promise<void> } {
  const netns = `/var/run/netns/${node.netns}`;
  const services = objects.registry.lookup('', 'v1', 'services');
  const slices = objects.registry.lookup('discovery.k8s.io', 'v1', 'endpointslices');
  let applied = '';
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const sync = (): void => {
    timer = undefined;
    const input = { ...proxyInput(objects.store.list(services), objects.store.list(slices)), podCidr: node.podCidr };
    if (buildKubeProxyScript(input) === applied) return;
    running = running.then(async () => {
      try {
        applied = await applyKubeProxyRules(runner, netns, input);
      } catch (err) {
        log('kube-proxy sync failed; retrying', { node: node.name, err: (err as Error).message });
        timer ??= setTimeout(sync, 1000);
      }
    });
  };
  const schedule = (): void => {
    timer ??= setTimeout(sync, 20);
  };
  const unsubscribe = objects.store.subscribe((ev) => {
    if (ev.typeKey === '/v1/services' || ev.typeKey === 'discovery.k8s.io/v1/endpointslices') schedule();
  });
  schedule();
  return {
    async stop() {
      unsubscribe();
      if (timer) clearTimeout(timer);
      await running;
      await removeKubeProxyRules(runner, netns).catch(() => undefined);
    },
  };
}
