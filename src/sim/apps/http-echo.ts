import http from 'node:http';

/**
 * Stand-in for an HTTP app image: answers every request with JSON naming the
 * pod, the request and the client address as the app saw it (which is what
 * mesh tests need: who called, from which IP).
 */
export function startHttpEcho(port: number, podName: string, namespace: string): http.Server {
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => {
      const body = JSON.stringify({
        pod: podName,
        namespace,
        method: req.method,
        url: req.url,
        headers: req.headers,
        bodyBytes: bytes,
        client: { ip: unmapped(req.socket.remoteAddress ?? ''), port: req.socket.remotePort },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(port);
  return server;
}

/** The dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; show them as users know them. */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
