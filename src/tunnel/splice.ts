import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export interface SpliceResult {
  /** bytes read from `a` and written towards `b` */
  bytesAtoB: number;
  /** bytes read from `b` and written towards `a` */
  bytesBtoA: number;
  /** set when either side failed; the other side was reset */
  error?: Error;
}

/**
 * Copies bytes both ways until both directions are finished. Both sockets
 * must have been created with `allowHalfOpen: true`: a FIN from one side is
 * passed on as a FIN (half-close), not as a full close. An error on one side
 * resets the other (RST), so the peer sees a failure, never a hang. `pipe`
 * gives backpressure: a slow reader pauses the writer's source socket instead
 * of letting the proxy buffer without bound. A side destroyed before it
 * finished (a drain deadline) resets the other.
 */
export function splice(a: Socket, b: Socket): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let open = 2;
    const fail = (from: Socket, to: Socket) => (err: Error) => {
      error ??= err;
      reset(to);
      if (!from.destroyed) from.destroy();
    };
    const closed = (): void => {
      open -= 1;
      if (open > 0) return;
      const result: SpliceResult = { bytesAtoB: a.bytesRead, bytesBtoA: b.bytesRead };
      if (error !== undefined) result.error = error;
      resolve(result);
    };
    // A side closed before both its directions finished was cut (reset, or destroyed at a
    // drain deadline): the other is reset too, not left open.
    const cut = (from: Socket, to: Socket) => (): void => {
      if (!(from.readableEnded && from.writableFinished)) reset(to);
      closed();
    };
    // A side already gone (its client reset while this leg was still connecting) never closes again.
    if (a.destroyed || b.destroyed) {
      reset(a);
      reset(b);
      resolve({ bytesAtoB: 0, bytesBtoA: 0, error: new Error('one side closed before the splice began') });
      return;
    }
    a.on('error', fail(a, b));
    b.on('error', fail(b, a));
    a.once('close', cut(a, b));
    b.once('close', cut(b, a));
    // A side that has both ended and been ended has nothing left to do.
    const finishWhenDone = (s: Socket): void => {
      const check = (): void => {
        if (s.readableEnded && s.writableFinished && !s.destroyed) s.destroy();
      };
      s.on('end', check);
      s.on('finish', check);
    };
    finishWhenDone(a);
    finishWhenDone(b);
    a.pipe(b);
    b.pipe(a);
  });
}

/** Only a TCP handle can send an RST; a TLS socket (the benchmark's Node TLS tunnel) is closed instead. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket instanceof TLSSocket) socket.destroy();
  else socket.resetAndDestroy();
}
