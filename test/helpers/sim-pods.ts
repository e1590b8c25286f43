import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { eventually } from './apiserver.js';
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

/**
 * One HTTP/1.0 request from a pod to web (http-echo :8080) on a new connection: `ok` when
 * it answered, else what happened (`connect: …`, `closed`, `timeout`, an error code).
 */
export async function webRequest(netns: string, ip: string, o: { path?: string; connectMs?: number; answerMs?: number } = {}): Promise<string> {
  let socket: import('node:net').Socket;
  try {
    socket = await connectFromNetns({ netns: `/var/run/netns/${netns}`, host: ip, port: 8080, mark: 0, timeoutMs: o.connectMs ?? 3000 });
  } catch (err) {
    return `connect: ${(err as Error).message}`;
  }
  return new Promise<string>((resolve) => {
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString()));
    socket.once('end', () => resolve(got.startsWith('HTTP/1.') ? 'ok' : 'closed'));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.setTimeout(o.answerMs ?? 5000, () => (socket.destroy(), resolve('timeout')));
    socket.end(`GET /${o.path ?? ''} HTTP/1.0\r\n\r\n`);
  });
}

/** Waits for `clientEchoWebPods(ns)` Ready and enrolled, then gives the client's netns and the servers' IPs. */
export async function clientEchoWebReady(kc: KubeConfig, ns: string): Promise<{ core: CoreV1Api; client: string; webIp: string; echoIp: string }> {
  const core = kc.makeApiClient(CoreV1Api);
  const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: ns })).items;
  await eventually(async () => (await pods()).length === 3 && (await pods()).every(readyAndEnrolled), 'client, echo and web Ready and enrolled', 90_000);
  const byName = new Map((await pods()).map((p) => [p.metadata!.name!, p]));
  return { core, client: netnsOf(byName.get('client')!), webIp: byName.get('web')!.status!.podIP!, echoIp: byName.get('echo')!.status!.podIP! };
}
