import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api } from '@kubernetes/client-node';
import { typedCrds } from '../../src/policy/crd-manifests.js';
import { encodeProxyV2 } from '../../src/waypoint/proxy-protocol.js';
import { startTestApiServer, type TestApiServer } from './apiserver.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface WaypointProcess {
  child: ChildProcess;
  ports: { listen: number; admin: number; readiness: number };
  log: string[];
  stop(): Promise<void>;
}

export interface WaypointWorld {
  api: TestApiServer;
  core: CoreV1Api;
  discovery: DiscoveryV1Api;
  custom: CustomObjectsApi;
}

/** The embedded API server with warren's CRDs (Gateway API and networking.warren.io included) and one namespace: where a waypoint process test starts. */
export async function waypointWorld(namespace: string): Promise<WaypointWorld> {
  const api = await startTestApiServer();
  const ext = api.kc.makeApiClient(ApiextensionsV1Api);
  for (const body of typedCrds()) await ext.createCustomResourceDefinition({ body });
  const core = api.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  return { api, core, discovery: api.kc.makeApiClient(DiscoveryV1Api), custom: api.kc.makeApiClient(CustomObjectsApi) };
}

/** `warren waypoint-proxy` as a real process on loopback, ports chosen by the kernel. */
export async function startWaypointProcess(kubeconfigText: string, dir: string, extra: string[] = []): Promise<WaypointProcess> {
  const kubeconfig = `${dir}/waypoint.kubeconfig`;
  await writeFile(kubeconfig, kubeconfigText);
  const child = spawn(
    process.execPath,
    [MAIN, 'waypoint-proxy', '--name', 'waypoint', '--namespace', 'demo', '--kubeconfig', kubeconfig, '--listen-address', '127.0.0.1', '--listen-port', '0', '--admin-address', '127.0.0.1', '--admin-port', '0', '--readiness-port', '0', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  let partial = '';
  child.stderr!.on('data', (c: Buffer) => log.push(c.toString()));
  const ports = await new Promise<WaypointProcess['ports']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`waypoint not ready in 20 s: ${log.join('')}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`waypoint exited ${code}: ${log.join('')}`)));
    child.stdout!.on('data', (c: Buffer) => {
      partial += c.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        if (line.includes('"msg":"waypoint ready"')) {
          clearTimeout(timer);
          const j = JSON.parse(line) as { listen: number; admin: number; readiness: number };
          resolve({ listen: j.listen, admin: j.admin, readiness: j.readiness });
        }
      }
    });
  });
  return {
    child,
    ports,
    log,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface Dial {
  /** the Service VIP:port the client dialed (the PROXY header's destination) */
  destination: { address: string; port: number };
  principal?: string;
}

/** A socket to the waypoint with the PROXY v2 header the node agent would send already written. */
export function dialWaypoint(port: number, d: Dial): Socket {
  const s = connect({ host: '127.0.0.1', port });
  s.write(encodeProxyV2({ source: { address: '10.244.1.5', port: 40000 + Math.floor(Math.random() * 20000) }, destination: d.destination, ...(d.principal ? { clientSpiffeId: d.principal } : {}) }));
  return s;
}

/** A keep-alive HTTP/1.1 agent whose connections go through the waypoint as the given client. */
export function waypointAgent(port: number, d: Dial): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  (agent as unknown as { createConnection: () => Socket }).createConnection = () => dialWaypoint(port, d);
  return agent;
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function send(agent: Agent, options: { method?: string; path?: string; headers?: OutgoingHttpHeaders; body?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: 'web.demo', path: options.path ?? '/', method: options.method ?? 'GET', headers: options.headers ?? {}, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end(options.body);
  });
}
