import { httpGetInNetns } from '../../net/netns-http.js';

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
