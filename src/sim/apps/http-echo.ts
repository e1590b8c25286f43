import http from 'node:http';

/**
 * Stand-in for an HTTP app image: answers every request with JSON naming the
 * pod, the request and the client address as the app saw it (which is what
 * mesh tests need: who called, from which IP). Like httpbin, `/delay/<seconds>`
 * answers after that long (at most 10 s); $ECHO_STATUS makes every answer
 * that status (an endpoint that fails, for outlier detection).
 */
export function startHttpEcho(port: number, podName: string, namespace: string, status = 200): http.Server {
  const server = http.createServer((req, res) => {
    const delay = /^\/delay\/(\d+(?:\.\d+)?)$/.exec(req.url ?? '');
    const delayMs = delay ? Math.min(10_000, Number(delay[1]) * 1000) : 0;
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
      const answer = (): void => void res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.listen(port);
  return server;
}

/** The dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; show them as users know them. */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
