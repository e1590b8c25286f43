import { call, native } from './netns-socket.js';

/** What a received descriptor is (the hand-off adopts only listening TCP sockets on the expected port). */
export interface ListenerInfo {
  /** 0: not an IP socket */
  family: 0 | 4 | 6;
  tcp: boolean;
  listening: boolean;
  /** -1 when it has no IP address */
  port: number;
}

/** A message read from a SOCK_SEQPACKET socket and the descriptors that came with it (close-on-exec, now this process's). */
export interface Packet {
  data: Buffer;
  fds: number[];
}

interface FdPassingBinding {
  seqpacketListen(path: string): number;
  seqpacketConnect(path: string): number;
  seqpacketAccept(fd: number): number;
  sendPacket(fd: number, data: Buffer, fds: number[]): boolean;
  recvPacket(fd: number): Packet | null;
  listenerInfo(fd: number): ListenerInfo;
}

const binding = (): FdPassingBinding => native() as unknown as FdPassingBinding;

/** A non-blocking listening unix SOCK_SEQPACKET socket at `path` (remove a stale file first; set the mode after). */
export const seqpacketListen = (path: string): number => call(() => binding().seqpacketListen(path));

/** A connected, non-blocking unix SOCK_SEQPACKET socket. */
export const seqpacketConnect = (path: string): number => call(() => binding().seqpacketConnect(path));

/** A waiting connection, or undefined when there is none. */
export function seqpacketAccept(fd: number): number | undefined {
  const c = call(() => binding().seqpacketAccept(fd));
  return c < 0 ? undefined : c;
}

/** One message with `fds` attached (SCM_RIGHTS: the peer gets its own references); false when the socket is full. */
export const sendPacket = (fd: number, data: Buffer, fds: number[] = []): boolean => call(() => binding().sendPacket(fd, data, fds));

/** The next message, or undefined when none is waiting; empty data and no descriptors: the peer closed. */
export const recvPacket = (fd: number): Packet | undefined => call(() => binding().recvPacket(fd)) ?? undefined;

export const listenerInfo = (fd: number): ListenerInfo => call(() => binding().listenerInfo(fd));
