import { spawn } from 'node:child_process';
import type { Server } from 'node:http';

/** A bridge plugin's result, the prevResult warren-cni gets in a chain. */
export const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/p1' }],
  ips: [
    { address: '10.244.1.5/24', gateway: '10.244.1.1', interface: 0 },
    { address: 'fd00:10:244:1::5/64', gateway: 'fd00:10:244:1::1', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};

/** What the agent receives for an ADD of the pod in `cniEnv()` with `prevResult`. */
export const addRequestBody = {
  containerId: 'c0ffee',
  netns: '/var/run/netns/p1',
  podName: 'cart-1',
  podNamespace: 'shop',
  podUid: 'uid-1',
  ips: ['10.244.1.5', 'fd00:10:244:1::5'],
};

/** The network config the runtime passes on stdin. */
export const netConf = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  cniVersion: '1.0.0',
  name: 'wrn',
  type: 'warren-cni',
  agentSocket: '/run/test/cni.sock',
  prevResult,
  ...over,
});

/** The environment a kubelet-driven runtime sets for an ADD. */
export const cniEnv = (over: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/var/run/netns/p1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1;K8S_POD_UID=uid-1;K8S_POD_INFRA_CONTAINER_ID=c0ffee',
  ...over,
});

export interface PluginRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a plugin executable as a runtime does: the env given and nothing else (no PATH), config on stdin. */
export function runPlugin(command: string, args: string[], env: Record<string, string | undefined>, stdin: string): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(command, args, { env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
    child.stdin.end(stdin);
  });
}

export function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
}
