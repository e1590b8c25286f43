import net from 'node:net';
import { createListener } from '../native/netns-socket.js';
import { SOCKET_HIGH_WATER_MARK } from './socket-buffers.js';

export interface PodListenerOptions {
  /** netns file of the pod */
  netns: string;
  port: number;
  family: 4 | 6;
  /** SO_MARK for accepted sockets' replies (the agent's mark) */
  mark: number;
  /** a listening socket handed over by the agent this one replaces (agent/listener-handoff.ts): accepted on instead of a new one */
  fd?: number;
}

/** One of the agent's listening sockets in a pod, as a successor agent takes it over (agent/listener-handoff.ts). */
export interface OwnedListener {
  family: 4 | 6;
  port: number;
  fd: number;
}

/**
 * A listener that lives in a pod's network namespace but belongs to this
 * process. Wildcard address: REDIRECT sends locally originated connections to
 * 127.0.0.1/::1 and inbound ones to the pod's own address. SO_REUSEPORT lets
 * a restarted or upgraded agent bind the same port before the old one exits.
 */
export async function listenInPod(
  options: PodListenerOptions,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  const fd = options.fd ?? createListener({
    netns: options.netns,
    family: options.family,
    port: options.port,
    mark: options.mark,
    reusePort: true,
  });
  // allowHalfOpen: a client's FIN must travel on as a FIN (see splice).
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: SOCKET_HIGH_WATER_MARK }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
