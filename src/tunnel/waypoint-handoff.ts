import type { Socket } from 'node:net';
import { WAYPOINT_PORTS, WAYPOINT_PROXY_ADDRESS } from '../gateway/constants.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { PROXY_MARK } from '../redirect/constants.js';
import { encodeProxyV2 } from '../waypoint/proxy-protocol.js';
import { HBONE } from './hbone-settings.js';
import { connectFromNetns } from './netns-connect.js';

/** An HBONE stream for a waypoint: who sent it and the address its client dialed. */
export interface WaypointStream {
  peer: SpiffeId;
  source: { ip: string; port: number };
  target: { ip: string; port: number };
}

/**
 * The client's own port, from the `Forwarded: for="ip:port"` its agent sends
 * on a waypoint CONNECT (waypoint-outbound.ts), believed only when its IP is
 * the tunnel's peer IP; otherwise the tunnel's own source port stands in.
 */
export function clientPort(forwarded: string | string[] | undefined, peerIp: string, fallback: number): number {
  const m = /for="?\[?([0-9a-fA-F:.]+?)\]?:(\d{1,5})"?(?:[;,]|$)/.exec(Array.isArray(forwarded) ? (forwarded[0] ?? '') : (forwarded ?? ''));
  const port = Number(m?.[2]);
  return m !== null && m[1] === peerIp && port > 0 && port <= 65535 ? port : fallback;
}

/**
 * Hands a tunneled stream to the waypoint process of this pod (docs/architecture.md §13,
 * Istio's PROXY/15088 inbound binding): a connection to 127.0.0.1:15088
 * made inside the pod's netns (loopback, so nothing outside the pod reaches
 * that port and the waypoint trusts the header), and a PROXY v2 header
 * first: the client's address, the address it dialed (the Service VIP:port)
 * and its verified SPIFFE ID (TLV 0xD0). The waypoint never does TLS.
 */
export async function connectToWaypoint(netns: string, stream: WaypointStream): Promise<Socket> {
  const header = waypointHeader(stream);
  const socket = await connectFromNetns({ netns, host: WAYPOINT_PROXY_ADDRESS, port: WAYPOINT_PORTS.proxy, mark: PROXY_MARK.value, timeoutMs: HBONE.connectTimeoutMs });
  socket.write(header);
  return socket;
}

/** The PROXY v2 header a hand-off starts with (both data paths: here and native-pod-proxy.ts). */
export function waypointHeader(stream: WaypointStream): Buffer {
  return encodeProxyV2({
    source: { address: stream.source.ip, port: stream.source.port },
    destination: { address: stream.target.ip, port: stream.target.port },
    clientSpiffeId: formatSpiffeId(stream.peer),
  });
}
