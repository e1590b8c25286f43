import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startGrpcEcho } from '../../../src/sim/apps/grpc-echo.js';
import { grpcFrame, grpcMessages } from '../../../src/sim/apps/grpc-frame.js';

/** The simulator's grpc-echo stand-in over h2c with prior knowledge: what test/e2e/waypoint-l7.test.ts calls through the waypoint. */
let server: ReturnType<typeof startGrpcEcho>;
let session: ClientHttp2Session;
before(async () => {
  server = startGrpcEcho(0, 'grpc-1');
  await once(server, 'listening');
  session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
after(() => {
  session.close();
  server.close();
});

function call(path: string, body: Buffer, contentType = 'application/grpc'): Promise<{ headers: Record<string, unknown>; messages: string[]; trailers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': contentType, te: 'trailers' });
    const chunks: Buffer[] = [];
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ headers, messages: grpcMessages(Buffer.concat(chunks)).map(String), trailers }));
    req.on('error', reject);
    req.end(body);
  });
}

test('Unary echoes one message, Stream answers three, status OK in the trailers, x-pod names the pod', async () => {
  const unary = await call('/echo.Echo/Unary', grpcFrame('hi'));
  assert.deepEqual([unary.headers[':status'], unary.headers['content-type'], unary.headers['x-pod']], [200, 'application/grpc', 'grpc-1']);
  assert.deepEqual(unary.messages, ['grpc-1: hi']);
  assert.equal(unary.trailers['grpc-status'], '0');
  const stream = await call('/echo.Echo/Stream', grpcFrame('hi'));
  assert.deepEqual(stream.messages, ['grpc-1: hi 0', 'grpc-1: hi 1', 'grpc-1: hi 2']);
  assert.equal(stream.trailers['grpc-status'], '0');
});

test('Status answers the code its message names; an unknown method is UNIMPLEMENTED; bad frames INVALID_ARGUMENT', async () => {
  assert.equal((await call('/echo.Echo/Status', grpcFrame('5'))).trailers['grpc-status'], '5');
  assert.equal((await call('/echo.Echo/Status', grpcFrame('99'))).trailers['grpc-status'], '3');
  assert.equal((await call('/echo.Echo/Nope', grpcFrame('x'))).trailers['grpc-status'], '12');
  assert.equal((await call('/echo.Echo/Unary', Buffer.from([0, 0, 0, 0, 9, 1]))).trailers['grpc-status'], '3', 'a truncated frame');
  assert.equal((await call('/echo.Echo/Unary', grpcFrame('x'), 'application/json')).trailers['grpc-status'], '13');
});

test('grpcMessages splits frames and refuses compressed ones', () => {
  assert.deepEqual(grpcMessages(Buffer.concat([grpcFrame('a'), grpcFrame(''), grpcFrame('bc')])).map(String), ['a', '', 'bc']);
  assert.throws(() => grpcMessages(Buffer.from([1, 0, 0, 0, 0])), /compressed/);
});
