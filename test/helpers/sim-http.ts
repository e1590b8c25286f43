import { request } from 'node:http';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';

export interface PodAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP/1.1 request from inside a simulator pod's netns (its agent captures it like any app's). */
export async function httpFromPod(netns: string, host: string, port: number, o: { method?: string; path?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<PodAnswer> {
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host, port, mark: 0, timeoutMs: 3000 });
  const method = o.method ?? 'GET';
  const timeoutMs = o.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: o.path ?? '/', method, headers: { connection: 'close', ...o.headers }, createConnection: () => socket }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${host}:${port}${o.path ?? '/'}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
