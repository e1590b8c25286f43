import { createRequire } from 'node:module';
import { WarrenError } from '../errors/warren-error.js';

/** Where sockets are created: a netns file such as /var/run/netns/x or /proc/PID/ns/net. */
export interface NetnsSocketOptions {
  /** Omit to use the caller's own network namespace. */
  netns?: string;
  family?: 4 | 6;
  /** Local address to bind; omit for the wildcard (listeners) or no bind (sockets). */
  address?: string;
  port?: number;
  /** SO_MARK value (needs CAP_NET_ADMIN). */
  mark?: number;
  reusePort?: boolean;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT: bind to a foreign address. */
  transparent?: boolean;
  /** IP_FREEBIND / IPV6_FREEBIND: bind to an address not (yet) on any interface. */
  freebind?: boolean;
  /** IPv6 only: accept IPv4-mapped connections too when false. Default true. */
  v6Only?: boolean;
  backlog?: number;
}

export interface OriginalDestination {
  family: 4 | 6;
  address: string;
  port: number;
}

interface NativeBinding {
  createListener(options: NetnsSocketOptions): number;
  createSocket(options: NetnsSocketOptions): number;
  originalDst(fd: number): OriginalDestination;
  threadNetnsInode(): number;
  peerCredentials(fd: number): PeerCredentials;
  netnsAddresses(path: string): string[];
}

/** Who is on the other end of a unix socket, as the kernel recorded it at connect(2). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** A system call failed; `errno` is its name (ENOENT…), `operation` what was being done. */
export class NetnsSocketError extends WarrenError {
  readonly errno: string;
  readonly operation: string;

  constructor(errno: string, operation: string) {
    super('ERR_NETNS_SOCKET', `${errno} ${operation}`, {
      retryable: errno === 'EADDRINUSE' || errno === 'EAGAIN' || errno === 'EINTR',
    });
    this.errno = errno;
    this.operation = operation;
  }
}

const require = createRequire(import.meta.url);

function loadBinding(): NativeBinding {
  // scripts/sanitized-addon.sh runs tests against an ASan/UBSan build
  const override = process.env.WARREN_NATIVE_ADDON;
  if (override !== undefined && override !== '') return require(override) as NativeBinding;
  try {
    // dist/src/native → package root; src/native (tsx) → package root.
    return require('../../../build/Release/warren_native.node') as NativeBinding;
  } catch (first) {
    try {
      return require('../../build/Release/warren_native.node') as NativeBinding;
    } catch {
      throw new WarrenError(
        'ERR_NATIVE_MISSING',
        'the native addon build/Release/warren_native.node is missing or broken; run `npm rebuild` (needs make and g++)',
        { cause: first },
      );
    }
  }
}

let binding: NativeBinding | undefined;
/** The loaded addon; other modules of src/native (dataplane.ts, netns-route.ts) type the functions they add to it. */
export function native(): NativeBinding {
  binding ??= loadBinding();
  return binding;
}

/** An addon's system-call error (it carries errno and operation) as NetnsSocketError; anything else as it is. */
export function nativeError(err: unknown): unknown {
  const e = err as { errno?: unknown; operation?: unknown };
  return typeof e.errno === 'string' && typeof e.operation === 'string' ? new NetnsSocketError(e.errno, e.operation) : err;
}

/** Runs an addon call, turning its system-call errors into NetnsSocketError. */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw nativeError(err);
  }
}

function checkPort(port: number | undefined): void {
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new WarrenError('ERR_INVALID_PORT', `port must be an integer 0-65535, got ${port}`);
  }
}

/** A bound, listening TCP socket in `netns`; pass the fd to `server.listen({ fd })`. */
export function createListener(options: NetnsSocketOptions): number {
  checkPort(options.port);
  return call(() => native().createListener(options));
}

/**
 * An unconnected TCP socket in `netns`, bound when `address`/`port` are given
 * (a foreign address needs `transparent`). Connect it with
 * `new net.Socket({ fd }).connect(...)`.
 */
export function createSocket(options: NetnsSocketOptions): number {
  checkPort(options.port);
  return call(() => native().createSocket(options));
}

/** The destination a connection had before REDIRECT rewrote it. */
export function originalDestination(fd: number): OriginalDestination {
  return call(() => native().originalDst(fd));
}

/** Global-scope addresses in the netns at `path` (rtnetlink, no process): what netns discovery matches pods by. */
export function netnsAddresses(path: string): string[] {
  return call(() => native().netnsAddresses(path));
}

/** Inode of the calling thread's netns (to verify the thread is home). */
export function threadNetnsInode(): number {
  return call(() => native().threadNetnsInode());
}

/** SO_PEERCRED of a connected unix socket. */
export function peerCredentials(fd: number): PeerCredentials {
  return call(() => native().peerCredentials(fd));
}

/** The kernel fd behind a connected or accepted net.Socket (libuv TCP or pipe handle): Node has no public accessor for it. */
export function socketFd(socket: import('node:net').Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new WarrenError('ERR_NO_FD', 'socket has no file descriptor (closed, or not a TCP or unix socket)');
  }
  return fd;
}

/** The listening socket's fd behind a listening net.Server (as socketFd for a Server). */
export function serverFd(server: import('node:net').Server): number {
  const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new WarrenError('ERR_NO_FD', 'server has no file descriptor (not listening)');
  return fd;
}
