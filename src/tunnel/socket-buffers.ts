/**
 * How much a proxied TCP socket may hold in its write queue before its
 * source is paused. Node's 16 KiB default pauses and resumes the source
 * (two epoll_ctl calls and an event-loop turn) for every socket read, and
 * cuts the coalesced writes of stream-splice.ts into 16 KiB writes; 256 KiB
 * holds what one read of an HBONE connection delivers. Per connection it
 * costs nothing while the peer keeps up: the queue is empty.
 */
export const SOCKET_HIGH_WATER_MARK = 256 * 1024;
