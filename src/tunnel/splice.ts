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
 * of letting the proxy buffer without bound.
 */
export function splice(a: Socket, b: Socket): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let open = 2;
    const fail = (from: Socket, to: Socket) => (err: Error) => {
      error ??= err;
      // Only a TCP handle can send an RST; a TLS socket (the benchmark's Node TLS tunnel) is closed instead.
      if (!to.destroyed) {
        if (to instanceof TLSSocket) to.destroy();
        else to.resetAndDestroy();
      }
      if (!from.destroyed) from.destroy();
    };
    const closed = (): void => {
      open -= 1;
      if (open > 0) return;
      const result: SpliceResult = { bytesAtoB: a.bytesRead, bytesBtoA: b.bytesRead };
      if (error !== undefined) result.error = error;
      resolve(result);
    };
    a.on('error', fail(a, b));
    b.on('error', fail(b, a));
    a.once('close', closed);
    b.once('close', closed);
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
