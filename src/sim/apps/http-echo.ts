import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';

/** At most this many request ids are remembered for /flaky (oldest forgotten first). */
const MAX_FLAKY_IDS = 1024;
/** /delay waits at most this long, as httpbin caps /delay/{n} at 10 s. */
const MAX_DELAY_SECONDS = 10;

/**
 * Stand-in for an HTTP app image: answers every request with JSON naming the
 * pod, the request and the client address as the app saw it (which is what
 * mesh tests need: who called, from which IP). Like httpbin, a few paths
 * misbehave on purpose so a proxy's timeouts and retries can be shown:
 * `/delay/N` answers after N seconds, `/status/N` answers with code N,
 * `/flaky/N` answers 503 to the first N requests carrying the same
 * x-request-id (a proxy keeps the id across its retries). A WebSocket
 * upgrade gets each text message back, prefixed with the pod's name.
 * `defaultStatus` ($ECHO_STATUS) is every other answer's status (an endpoint
 * that fails, for outlier detection).
 */
export function startHttpEcho(port: number, podName: string, namespace: string, defaultStatus = 200): http.Server {
  const seen = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => {
      const [, kind, arg] = /^\/(delay|status|flaky)\/(\d+(?:\.\d+)?)(?:[/?]|$)/.exec(req.url ?? '') ?? [];
      let status = defaultStatus;
      let delayMs = 0;
      let attempt: number | undefined;
      if (kind === 'delay') delayMs = Math.min(Number(arg), MAX_DELAY_SECONDS) * 1000;
      if (kind === 'status' && Number(arg) >= 200 && Number(arg) <= 599) status = Number(arg);
      if (kind === 'flaky') {
        const id = String(req.headers['x-request-id'] ?? '');
        attempt = (seen.get(id) ?? 0) + 1;
        seen.delete(id);
        seen.set(id, attempt);
        if (seen.size > MAX_FLAKY_IDS) seen.delete(seen.keys().next().value!);
        if (attempt <= Number(arg)) status = 503;
      }
      const body = JSON.stringify({
        pod: podName,
        namespace,
        method: req.method,
        url: req.url,
        headers: req.headers,
        bodyBytes: bytes,
        client: { ip: unmapped(req.socket.remoteAddress ?? ''), port: req.socket.remotePort },
        ...(attempt !== undefined ? { attempt } : {}),
      });
      const answer = (): void => {
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (delayMs === 0) return answer();
      const timer = setTimeout(answer, delayMs);
      res.on('close', () => clearTimeout(timer));
    });
  });
  const ws = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    ws.handleUpgrade(req, socket, head, (conn) => {
      conn.on('message', (m) => conn.send(`${podName}: ${m.toString()}`));
      conn.on('error', () => conn.terminate());
    });
  });
  server.on('close', () => ws.close());
  server.listen(port);
  return server;
}

/** The dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; show them as users know them. */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
