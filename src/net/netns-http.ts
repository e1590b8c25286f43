import { request } from 'node:http';
import { connectFromNetns } from '../tunnel/netns-connect.js';

export interface NetnsHttpResponse {
  status: number;
  body: Buffer;
}

/**
 * One HTTP GET made by this process from inside a netns (a pod's or a node's):
 * how the operator commands reach a simulator node's agent, and how kubelet
 * probes, the demo's client and the tests reach addresses that exist only in
 * the simulator's namespaces.
 */
export async function httpGetInNetns(options: { netns: string; host: string; port: number; path?: string; headers?: Record<string, string>; timeoutMs?: number }): Promise<NetnsHttpResponse> {
  const timeoutMs = options.timeoutMs ?? 3000;
  const socket = await connectFromNetns({ netns: `/var/run/netns/${options.netns}`, host: options.host, port: options.port, mark: 0, timeoutMs });
  return new Promise((resolve, reject) => {
    const req = request({ createConnection: () => socket, host: options.host, path: options.path ?? '/', headers: { Connection: 'close', ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${options.host}:${options.port} within ${timeoutMs} ms`)));
    req.end();
  });
}
