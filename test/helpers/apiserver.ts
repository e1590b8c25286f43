import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../../src/k8s/lean/api-client.js';
import { loadApiCredentials } from '../../src/k8s/lean/credentials.js';
import { leanWatcher } from '../../src/k8s/lean/watcher.js';
import type { Watcher } from '../../src/k8s/watcher.js';
import { kubeconfig } from '../../src/sim/apiserver/kubeconfig.js';
import type { PodAccess } from '../../src/sim/apiserver/pod-log.js';
import { startApiServer, type RunningApiServer } from '../../src/sim/apiserver/server.js';

export interface TestApiServer {
  server: RunningApiServer;
  dir: string;
  url: string;
  kc: KubeConfig;
  kubeconfigText: string;
  /** the node agent's own client (src/k8s/lean/) for this server, from its kubeconfig file; closed by stop() */
  agentClient(log?: (msg: string, fields: Record<string, unknown>) => void): Promise<{ api: KubeApi; watch: Watcher }>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** An API server on loopback with its state in a temp dir; `restart` keeps dir and port. */
export async function startTestApiServer(options: { bookmarkIntervalMs?: number; pods?: PodAccess } = {}): Promise<TestApiServer> {
  const dir = await mkdtemp(`${tmpdir()}/warren-api-`);
  const start = (port: number): Promise<RunningApiServer> =>
    startApiServer({ dir, listen: [{ address: '127.0.0.1', port }], advertise: { address: '127.0.0.1', port: 6443 }, ...options });
  const clients: KubeApi[] = [];
  const handle: TestApiServer = {
    server: await start(0),
    dir,
    url: '',
    kc: new KubeConfig(),
    kubeconfigText: '',
    async agentClient(log = () => {}) {
      const file = `${dir}/agent-kubeconfig`;
      await writeFile(file, handle.kubeconfigText);
      const api = new KubeApi(loadApiCredentials(file));
      clients.push(api);
      return { api, watch: leanWatcher(api, log) };
    },
    async restart() {
      await handle.server.close();
      handle.server = await start(handle.server.ports[0]!);
    },
    async stop() {
      for (const c of clients) c.close();
      await handle.server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  handle.url = `https://127.0.0.1:${handle.server.ports[0]}`;
  handle.kubeconfigText = kubeconfig(handle.url, handle.server.caCertPem, handle.server.adminToken);
  handle.kc.loadFromString(handle.kubeconfigText);
  return handle;
}

/**
 * Polls until `check` returns true; bounded, so a broken feature fails instead of hanging.
 * `what` may be a function: it is asked at the timeout, so the error can show the state that never converged.
 */
export async function eventually(check: () => boolean | Promise<boolean>, what: string | (() => string | Promise<string>), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : await what()}`);
}
