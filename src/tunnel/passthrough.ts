import type { Socket } from 'node:net';
import { originalDestination, socketFd, type OriginalDestination } from '../native/netns-socket.js';
import { connectFromNetns } from './netns-connect.js';
import { splice, type SpliceResult } from './splice.js';

export interface ForwardResult extends SpliceResult {
  destination?: OriginalDestination;
}

/**
 * Outbound passthrough: a connection captured on the pod's outbound listener
 * is re-made to its original destination (or the endpoint chosen for a
 * service VIP) from a marked socket in the same
 * pod netns (so the pod's rules let it out and the peer sees the pod's IP).
 * Any failure resets the client: it sees an error, never a hang.
 */
export async function forwardOutbound(client: Socket, netns: string, mark: number, destination?: OriginalDestination, onConnected?: () => void): Promise<ForwardResult> {
  return forward(client, netns, mark, false, destination, onConnected);
}

/**
 * Inbound plaintext delivery: a connection captured on the pod's inbound
 * listener is delivered to the app it was addressed to, from inside the pod,
 * with the client's own IP as source (IP_TRANSPARENT), so the app sees who
 * called it.
 */
export async function deliverInbound(client: Socket, netns: string, mark: number, destination?: OriginalDestination, onConnected?: () => void): Promise<ForwardResult> {
  return forward(client, netns, mark, true, destination, onConnected);
}

/** `onConnected` runs once the upstream connection stands, before any byte is carried. */
async function forward(client: Socket, netns: string, mark: number, spoofSource: boolean, chosen?: OriginalDestination, onConnected?: () => void): Promise<ForwardResult> {
  let destination: OriginalDestination;
  let upstream: Socket;
  try {
    destination = chosen ?? originalDestination(socketFd(client));
    const source = client.remoteAddress;
    upstream = await connectFromNetns({
      netns,
      host: destination.address,
      port: destination.port,
      mark,
      ...(spoofSource && source !== undefined ? { sourceAddress: source } : {}),
    });
  } catch (err) {
    client.resetAndDestroy();
    return { bytesAtoB: 0, bytesBtoA: 0, error: err as Error };
  }
  onConnected?.();
  const result = await splice(client, upstream);
  return { ...result, destination };
}
