import { request } from 'node:http';
import { connectFromNetns } from '../../tunnel/netns-connect.js';

export interface NetnsHttpResponse {
  status: number;
  body: Buffer;
}

/**
 * One HTTP GET made by this process from inside a netns (a pod's or a
 * node's): how kubelet probes, the demo's client and the tests reach
 * addresses that exist only in the simulator's namespaces.
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

export interface EchoReply {
  pod: string;
  namespace?: string;
  client: { ip: string; port: number };
}

/** A GET to an http-echo app from a pod; the reply names the pod that served it. */
export async function httpGetFromPod(netns: string, host: string, port: number, timeoutMs = 3000): Promise<EchoReply> {
  const res = await httpGetInNetns({ netns, host, port, timeoutMs });
  try {
    return JSON.parse(res.body.toString()) as EchoReply;
  } catch (err) {
    throw new Error(`${host}:${port} did not answer like http-echo: ${(err as Error).message}`);
  }
}
