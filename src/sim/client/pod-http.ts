import { request } from 'node:http';
import { connectFromNetns } from '../../tunnel/netns-connect.js';

export interface EchoReply {
  pod: string;
  namespace?: string;
  client: { ip: string; port: number };
}

/** One HTTP GET made from inside a pod's netns to an http-echo app; the reply names the pod that served it. */
export async function httpGetFromPod(netns: string, host: string, port: number, timeoutMs = 3000): Promise<EchoReply> {
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host, port, mark: 0, timeoutMs });
  return new Promise((resolve, reject) => {
    const req = request({ createConnection: () => socket, host, path: '/', headers: { Connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString()) as EchoReply);
        } catch (err) {
          reject(new Error(`${host}:${port} did not answer like http-echo: ${(err as Error).message}`));
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    req.end();
  });
}
