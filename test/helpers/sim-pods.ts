import type { V1Pod } from '@kubernetes/client-node';
import { podNetnsName } from '../../src/sim/topology/plan.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';

/** The simulator's netns name of a pod. */
export const netnsOf = (pod: V1Pod): string => podNetnsName(pod.spec!.nodeName!, pod.metadata!.namespace!, pod.metadata!.name!);

/** Sends `payload` from a pod to host:port through whatever the pod's rules do, and returns what came back. */
export async function echoFrom(netns: string, host: string, port: number, payload: Buffer): Promise<Buffer> {
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host, port, mark: 0, timeoutMs: 3000 });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('echo timed out')));
    socket.end(payload);
  });
}
