import net from 'node:net';

/** Stand-in for a TCP app image: echoes bytes, and half-closes after the client does. */
export function startTcpEcho(port: number): net.Server {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.pipe(socket);
    socket.on('error', () => socket.destroy());
  });
  server.listen(port);
  return server;
}
