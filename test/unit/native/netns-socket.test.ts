import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { statSync } from 'node:fs';
import {
  createListener,
  createSocket,
  originalDestination,
  threadNetnsInode,
  socketFd,
  NetnsSocketError,
} from '../../../src/native/netns-socket.js';
import { WarrenError } from '../../../src/errors/warren-error.js';

test('a missing netns is a typed error naming errno and operation, and the thread stays home', () => {
  const home = threadNetnsInode();
  assert.equal(home, statSync('/proc/self/ns/net').ino);
  assert.throws(
    () => createListener({ netns: '/nonexistent/netns', port: 0 }),
    (err: unknown) =>
      err instanceof NetnsSocketError &&
      err.code === 'ERR_NETNS_SOCKET' &&
      err.errno === 'ENOENT' &&
      err.message === 'ENOENT opening netns /nonexistent/netns',
  );
  assert.equal(threadNetnsInode(), home);
});

test('a file that is not a netns is refused by setns with EINVAL', () => {
  assert.throws(
    () => createSocket({ netns: '/proc/self/status' }),
    (err: unknown) => err instanceof NetnsSocketError && err.errno === 'EINVAL' && /entering netns/.test(err.message),
  );
});

test('out-of-range ports and malformed addresses are rejected before any syscall', () => {
  assert.throws(() => createListener({ port: 70000 }), (e: unknown) => e instanceof WarrenError && e.code === 'ERR_INVALID_PORT');
  assert.throws(
    () => createListener({ address: '10.0.0.300', port: 0 }),
    (e: unknown) => e instanceof NetnsSocketError && e.errno === 'EINVAL' && /parsing IPv4 address/.test(e.message),
  );
});

test('a listener fd from the addon serves connections through net.Server', async () => {
  const fd = createListener({ address: '127.0.0.1', port: 0 });
  const server = net.createServer((s) => s.end('pong'));
  await new Promise<void>((resolve) => server.listen({ fd }, resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    const reply = await new Promise<string>((resolve, reject) => {
      let data = '';
      net
        .connect(port, '127.0.0.1')
        .on('data', (d) => (data += d))
        .on('end', () => resolve(data))
        .on('error', reject);
    });
    assert.equal(reply, 'pong');
  } finally {
    server.close();
  }
});

test('a second listener on the same port needs SO_REUSEPORT on both', () => {
  const a = createListener({ address: '127.0.0.1', port: 0, reusePort: true });
  const server = new net.Server();
  try {
    server.listen({ fd: a });
    const port = (server.address() as net.AddressInfo).port;
    const b = createListener({ address: '127.0.0.1', port, reusePort: true });
    new net.Server().listen({ fd: b }).close();
    assert.throws(
      () => createListener({ address: '127.0.0.1', port }),
      (e: unknown) => e instanceof NetnsSocketError && e.errno === 'EADDRINUSE' && e.retryable,
    );
  } finally {
    server.close();
  }
});

test('reading the original destination of a connection that was not redirected fails with ENOENT', async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  try {
    const socket = await accepted;
    assert.throws(
      () => originalDestination(socketFd(socket)),
      (e: unknown) => e instanceof NetnsSocketError && e.errno === 'ENOENT' && /SO_ORIGINAL_DST/.test(e.message),
    );
    socket.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});
