import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { grpcFrame, grpcMessages, MAX_GRPC_MESSAGE } from './grpc-frame.js';

/** gRPC status codes the stand-in answers with (grpc/doc/statuscodes.md). */
const GRPC = { OK: 0, INVALID_ARGUMENT: 3, UNIMPLEMENTED: 12, INTERNAL: 13, RESOURCE_EXHAUSTED: 8 } as const;
/** /echo.Echo/Stream answers this many messages. */
export const STREAM_MESSAGES = 3;

/**
 * Stand-in for a gRPC app image: h2c with prior knowledge (what a mesh
 * proxy sends in cleartext), service `echo.Echo` with raw-byte messages:
 * `Unary` answers `<pod>: <message>`; `Stream` answers `<pod>: <message> <i>`
 * for i = 0..2 (a server stream); `Status` answers with the gRPC status
 * code its message names (a failing call, status in the trailers); any
 * other method is UNIMPLEMENTED, as a gRPC server answers. Every answer
 * carries `x-pod` so a test can tell the app's answers from a proxy's.
 */
export function startGrpcEcho(port: number, podName: string): Http2Server {
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => stream.destroy());
    const path = String(headers[':path'] ?? '');
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (status: number, messages: string[], message = ''): void => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-pod': podName }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(status), ...(message ? { 'grpc-message': encodeURIComponent(message) } : {}) }));
      for (const m of messages) stream.write(grpcFrame(m));
      stream.end();
    };
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_GRPC_MESSAGE + 5) return finish(GRPC.RESOURCE_EXHAUSTED, [], 'request too large');
      chunks.push(c);
    });
    stream.on('end', () => {
      if (size > MAX_GRPC_MESSAGE + 5) return;
      if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) return finish(GRPC.INTERNAL, [], 'content-type is not application/grpc');
      let request: string;
      try {
        request = grpcMessages(Buffer.concat(chunks)).map((m) => m.toString()).join('');
      } catch (err) {
        return finish(GRPC.INVALID_ARGUMENT, [], (err as Error).message);
      }
      if (path === '/echo.Echo/Unary') return finish(GRPC.OK, [`${podName}: ${request}`]);
      if (path === '/echo.Echo/Stream') return finish(GRPC.OK, Array.from({ length: STREAM_MESSAGES }, (_, i) => `${podName}: ${request} ${i}`));
      if (path === '/echo.Echo/Status') {
        const code = Number(request);
        return Number.isInteger(code) && code >= 0 && code <= 16 ? finish(code, [], `status ${code} as asked`) : finish(GRPC.INVALID_ARGUMENT, [], 'the message must be a gRPC status code 0-16');
      }
      finish(GRPC.UNIMPLEMENTED, [], `unknown method ${path}`);
    });
  });
  server.listen(port);
  return server;
}
