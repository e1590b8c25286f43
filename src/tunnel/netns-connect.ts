import { Socket, isIPv6 } from 'node:net';
import { createSocket } from '../native/netns-socket.js';
import { WarrenError } from '../errors/warren-error.js';
import { SOCKET_HIGH_WATER_MARK } from './socket-buffers.js';

export interface NetnsConnectOptions {
  /** netns file of the pod to connect from */
  netns: string;
  host: string;
  port: number;
  /** SO_MARK so the pod's redirect rules let this socket through */
  mark: number;
  /**
   * Source address to present; a foreign one (the original client's) needs
   * IP_TRANSPARENT and the policy routing of docs/architecture.md §3 for the replies.
   */
  sourceAddress?: string;
  timeoutMs?: number;
}

/**
 * A TCP connection made from inside a pod's network namespace by this
 * process. Resolves once connected; rejects with ERR_UPSTREAM_CONNECT
 * (retryable) on refusal, unreachability or timeout.
 */
export function connectFromNetns(options: NetnsConnectOptions): Promise<Socket> {
  const family = isIPv6(options.host) ? 6 : 4;
  const fd = createSocket({
    netns: options.netns,
    family,
    mark: options.mark,
    ...(options.sourceAddress === undefined
      ? {}
      : { address: options.sourceAddress, transparent: true, freebind: true }),
  });
  // TCP_NODELAY is already set by the addon on every socket it makes.
  // SocketConstructorOpts lacks the Duplex options net.Socket passes on.
  const socket = new Socket({ fd, allowHalfOpen: true, readableHighWaterMark: SOCKET_HIGH_WATER_MARK, writableHighWaterMark: SOCKET_HIGH_WATER_MARK } as ConstructorParameters<typeof Socket>[0]);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new WarrenError('ERR_UPSTREAM_CONNECT', `connecting to ${options.host}:${options.port} timed out after ${timeoutMs} ms`, {
          retryable: true,
        }),
      );
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new WarrenError('ERR_UPSTREAM_CONNECT', `connecting to ${options.host}:${options.port} from ${options.netns}: ${err.message}`, {
          cause: err,
          retryable: true,
        }),
      );
    };
    socket.once('error', onError);
    socket.connect(options.port, options.host, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
