import { constants, type Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { SpliceResult } from './splice.js';
import { SOCKET_HIGH_WATER_MARK } from './socket-buffers.js';

/**
 * Copies bytes both ways between a TCP socket and an HBONE stream (HTTP/2
 * CONNECT, RFC 9113 §8.5): FIN ↔ END_STREAM (half-close carried both ways),
 * a TCP error or reset ↔ RST_STREAM(CONNECT_ERROR), and bounded write
 * queues plus HTTP/2 flow control for backpressure, so a slow reader stalls
 * the sender instead of growing a buffer. A RST_STREAM of any code, even
 * NO_ERROR, or a socket destroyed before it finished, resets the other side. Resolves when both are closed; `bytesAtoB` counts
 * socket → stream.
 */
export function spliceStream(socket: Socket, stream: Http2Stream): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    let open = 2;
    const closed = (): void => {
      if (--open > 0) return;
      const result: SpliceResult = { bytesAtoB: socket.bytesRead, bytesBtoA: socket.bytesWritten };
      if (error !== undefined) result.error = error;
      resolve(result);
    };
    // A side already gone (the client reset while the tunnel was being opened) never closes again.
    if (socket.destroyed || stream.destroyed || stream.closed) {
      resetStream(stream, constants.NGHTTP2_CONNECT_ERROR);
      if (!socket.destroyed) socket.resetAndDestroy();
      resolve({ bytesAtoB: 0, bytesBtoA: 0, error: new Error('one side closed before the splice began') });
      return;
    }
    const pump = coalescingPump(stream, socket);
    socket.on('error', (err: Error) => {
      error ??= err;
      // Whatever the stream still holds must be read, or its bytes never return to the
      // connection's flow-control window and every other stream on it stalls.
      pump.discard();
      resetStream(stream, constants.NGHTTP2_CONNECT_ERROR);
      socket.destroy();
    });
    stream.on('error', (err: Error) => {
      error ??= err;
    });
    stream.once('close', () => {
      // A stream that ends without both END_STREAMs was reset (or its session died): reset the TCP side too.
      if (stream.rstCode !== constants.NGHTTP2_NO_ERROR || !stream.readableEnded) {
        error ??= new Error(`the tunnel stream was reset (code ${stream.rstCode})`);
        if (!socket.destroyed) socket.resetAndDestroy();
      } else if (socket.writableFinished && socket.readableEnded && !socket.destroyed) socket.destroy();
      closed();
    });
    socket.once('close', () => {
      // Closed before both directions finished: cut (reset, or destroyed at a drain deadline).
      if (!(socket.readableEnded && socket.writableFinished)) resetStream(stream, constants.NGHTTP2_CONNECT_ERROR);
      closed();
    });
    const finishWhenDone = (): void => {
      if (socket.readableEnded && socket.writableFinished && stream.closed && !socket.destroyed) socket.destroy();
    };
    socket.on('end', finishWhenDone);
    socket.on('finish', finishWhenDone);
    pumpIntoStream(socket, stream);
  });
}

/**
 * Socket → tunnel, as `pipe` but pausing the socket only once the stream
 * holds SOCKET_HIGH_WATER_MARK: an Http2Stream's own 16 KiB mark is below
 * one socket read, so `pipe` would pause and resume the socket every read.
 */
function pumpIntoStream(socket: Socket, stream: Http2Stream): void {
  socket.on('data', (chunk: Buffer) => {
    if (stream.destroyed) return;
    stream.write(chunk);
    if (stream.writableLength >= SOCKET_HIGH_WATER_MARK) socket.pause();
  });
  // 'drain' follows every write that found the queue over the stream's own mark, so it comes.
  stream.on('drain', () => socket.resume());
  socket.once('end', () => {
    if (!stream.destroyed) stream.end();
  });
}

/**
 * Tunnel → socket. HTTP/2 hands a stream's bytes over in frame-sized and
 * TLS-record-sized pieces (~8 KiB on average, several per socket read), and
 * `pipe` would make one write syscall, and wake the app once, per piece.
 * Corking the socket for the rest of the event-loop turn sends everything
 * that arrived in it with one writev. Backpressure as `pipe`: the stream is
 * paused while the socket's buffer is over its high-water mark.
 */
function coalescingPump(stream: Http2Stream, socket: Socket): { discard(): void } {
  let corked = false;
  let discarding = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  stream.on('data', (chunk: Buffer) => {
    if (discarding || socket.destroyed) return;
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    if (!socket.write(chunk)) stream.pause();
  });
  socket.on('drain', () => {
    if (!discarding) stream.resume();
  });
  stream.once('end', () => {
    if (discarding || socket.destroyed) return;
    // Node ends the readable side of a stream reset with NO_ERROR too: a stream closed while
    // this side still sends was reset, not finished (RFC 9113 §8.5: END_STREAM is the FIN),
    // and a half-open client would never notice an RST after a FIN.
    if (stream.closed && !stream.writableEnded) socket.resetAndDestroy();
    else socket.end();
  });
  return {
    discard(): void {
      discarding = true;
      stream.resume();
    },
  };
}

/**
 * RST_STREAM, and only that. Node's `close(code)` first ends the writable
 * side (END_STREAM goes out, then the reset), so the peer would pass a FIN
 * to its app before the reset — a denied or broken connection would look
 * like a clean close. Marking the side as ending skips that end().
 */
export function resetStream(stream: Http2Stream, code: number): void {
  if (stream.destroyed || stream.closed) return;
  (stream as unknown as { _writableState: { ending: boolean } })._writableState.ending = true;
  stream.close(code);
}
