import type { V1Pod } from '@kubernetes/client-node';
import { podNetnsName } from '../../src/sim/topology/plan.js';
import { connectFromNetns } from '../../src/tunnel/netns-connect.js';

/** A pod Ready and enrolled by its node's agent (`warren.io/redirection=enabled`). */
export const readyAndEnrolled = (p: V1Pod): boolean =>
  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && p.metadata?.annotations?.['warren.io/redirection'] === 'enabled';

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

/**
 * What a client sees of one connection attempt: `ok` when the server answered, `reset`
 * when the connection was reset (how warren refuses: the client's agent resets the app's
 * socket after a 401 on CONNECT, the server's agent resets a plaintext one), otherwise
 * what else happened (`closed`, `timeout`, an error code) — never counted as a denial.
 */
export async function connectionOutcome(netns: string, ip: string, port: number): Promise<string> {
  const reset = (code: string | undefined): boolean => code === 'ECONNRESET' || code === 'EPIPE';
  // A reset can arrive before the connect completes in this process (the agent resets a
  // plaintext connection right after accepting it): the cause's code says which it was.
  const socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host: ip, port, mark: 0, timeoutMs: 3000 }).catch((err: Error) => {
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    return reset(cause?.code) ? 'reset' : `connect: ${err.message}`;
  });
  if (typeof socket === 'string') return socket;
  try {
    return await new Promise<string>((resolve) => {
      socket.once('data', () => resolve('ok'));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(reset(err.code) ? 'reset' : (err.code ?? err.message)));
      socket.once('end', () => resolve('closed'));
      socket.setTimeout(5000, () => resolve('timeout'));
      // tcp-echo echoes it, http-echo answers it.
      socket.write('GET / HTTP/1.0\r\n\r\n');
    });
  } finally {
    socket.destroy();
  }
}
